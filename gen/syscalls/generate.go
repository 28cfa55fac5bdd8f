// Package syscalls holds syscall names by number per architecture, generated from the kernel's
// headers (Debian's linux-libc-dev), never typed by hand.
package syscalls

//go:generate go run ../../tools/syscalltable syscalls.go x86_64=/usr/include/x86_64-linux-gnu/asm/unistd_64.h x86=/usr/include/x86_64-linux-gnu/asm/unistd_32.h x32=/usr/include/x86_64-linux-gnu/asm/unistd_x32.h aarch64=clang:aarch64-linux-gnu:/usr/aarch64-linux-gnu/include arm=clang:arm-linux-gnueabihf:/usr/arm-linux-gnueabihf/include
