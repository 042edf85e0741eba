#!/usr/bin/env node
// binding.gyp's include_dirs: prints native/uapi when the system's kernel
// headers lack the iommufd and device-cdev definitions the addon uses (a
// compile probe, so the answer is the compiler's own), nothing otherwise.
'use strict';

const { spawnSync } = require('node:child_process');

const probe = `
#include <linux/vfio.h>
#include <linux/iommufd.h>
#ifndef VFIO_DEVICE_BIND_IOMMUFD
#error no device cdev ioctls
#endif
static struct iommu_ioas_iova_ranges r;
static struct vfio_device_attach_iommufd_pt a;
`;
const cxx = (process.env.CXX || 'c++').split(/\s+/).filter(Boolean);
const r = spawnSync(cxx[0], [...cxx.slice(1), '-fsyntax-only', '-x', 'c++', '-'], { input: probe, stdio: ['pipe', 'ignore', 'ignore'] });
if (r.status !== 0) console.log('native/uapi');
