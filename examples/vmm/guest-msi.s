.code16
.org 0
start:
  cli
  movl $0x1ff, %fs:0xf0          # LAPIC SVR: software-enable, spurious vector 0xff
  movl $0x12345678, %es:0x04     # edu liveness
  movl %es:0x04, %eax
  movl %eax, 0x500
  movl $0x2000, %es:0x80         # DMA RAM 0x2000 -> edu 0x40000, 64 bytes
  movl $0x40000, %es:0x88
  movl $64, %es:0x90
  movl $1, %es:0x98
1: testl $1, %es:0x98
  jnz 1b
  movl $0x40000, %es:0x80        # DMA edu 0x40000 -> RAM 0x3000, interrupt when done
  movl $0x3000, %es:0x88
  movl $64, %es:0x90
  movl $7, %es:0x98
2: cli
  cmpw $1, 0x600
  jae 3f
  sti
  hlt
  jmp 2b
3: movw 0x600, %ax
  outb %al, $0x10               # done: the one exit to userspace
  hlt
handler:                         # MSI vector 0x40
  pushl %eax
  movl %es:0x24, %eax
  movl %eax, 0x504
  movl %eax, %es:0x64            # ack edu
  incw 0x600
  movl $0, %fs:0xb0              # LAPIC EOI
  popl %eax
  iret
