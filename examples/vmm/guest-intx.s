.code16
.org 0
start:
  cli
  movl $0x1ff, %fs:0xf0          # LAPIC SVR: software-enable
  movl $0x700, %fs:0x350         # LVT0: ExtINT, unmasked (the PIC's way in)
  movb $0x11, %al                # PIC master: ICW1 edge, cascade, ICW4
  outb %al, $0x20
  movb $0x20, %al                # ICW2: vectors 0x20-0x27
  outb %al, $0x21
  movb $0x04, %al                # ICW3: slave on IRQ2
  outb %al, $0x21
  movb $0x01, %al                # ICW4: 8086 mode, normal EOI
  outb %al, $0x21
  movb $0xdf, %al                # OCW1: only IRQ5 unmasked
  outb %al, $0x21
  movl $1, %es:0x60              # edu: raise interrupt (status bit 0)
1: cli
  cmpw $1, 0x600
  jae 2f
  sti
  hlt
  jmp 1b
2: movl $2, %es:0x60             # again: arrives only if the line was unmasked
3: cli
  cmpw $2, 0x600
  jae 4f
  sti
  hlt
  jmp 3b
4: movw 0x600, %ax
  outb %al, $0x10
  hlt
handler:                         # IRQ5 = vector 0x25
  pushl %eax
  pushl %ebx
  movl %es:0x24, %eax
  movzwl 0x600, %ebx
  movl %eax, 0x510(,%ebx,4)      # record each interrupt's status
  movl %eax, %es:0x64            # ack edu: it lowers its line
  incw 0x600
  movb $0x20, %al                # non-specific EOI to the PIC: KVM signals the resample fd
  outb %al, $0x20
  popl %ebx
  popl %eax
  iret
