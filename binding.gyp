{
  "targets": [
    {
      "target_name": "vfio",
      "sources": [
        "native/addon.cc",
        "native/errors.cc",
        "native/faults.cc",
        "native/errno_name.cc",
        "native/wrap.cc",
        "native/registry.cc",
        "native/info_caps.cc",
        "native/access.cc",
        "native/container.cc",
        "native/container_type1.cc",
        "native/container_spapr.cc",
        "native/group.cc",
        "native/device.cc",
        "native/device_reset.cc",
        "native/device_cdev.cc",
        "native/iommufd.cc",
        "native/region_mmap.cc",
        "native/mapped_memory.cc",
        "native/dma_buffer.cc",
        "native/eventfd.cc",
        "native/kvm.cc",
        "native/vm_routes.cc",
        "native/vcpu.cc",
        "native/constants.cc",
        "native/glibc_floor.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "<!@(node scripts/uapi-include.js)"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra", "-Wno-missing-field-initializers"]
    }
  ]
}
