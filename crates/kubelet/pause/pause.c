/*
 * pause: the process that holds a pod sandbox's namespaces open (what upstream's
 * registry.k8s.io/pause does), built by crates/kubelet/build.rs into the image that
 * `tug_kubelet::image::pause_archive` writes.
 *
 * No libc: it is linked with -static -nostdlib and talks to the kernel through raw
 * system calls, so the binary is a few kilobytes and runs in an empty root filesystem.
 *
 * It blocks SIGCHLD, SIGINT and SIGTERM and waits for them with rt_sigtimedwait (no
 * signal handlers, so no signal trampolines): on SIGCHLD it reaps every exited child
 * (orphans of a shared PID namespace are reparented to it), on SIGINT or SIGTERM it
 * exits 0. As PID 1 of its namespace it cannot be killed by signals it does not wait
 * for; containerd stops sandboxes with SIGKILL, which always works.
 */

#if defined(__x86_64__)
#define SYS_rt_sigprocmask 14
#define SYS_wait4 61
#define SYS_exit 60
#define SYS_rt_sigtimedwait 128
#elif defined(__aarch64__)
#define SYS_rt_sigprocmask 135
#define SYS_wait4 260
#define SYS_exit 93
#define SYS_rt_sigtimedwait 137
#else
#error "pause.c: raw system calls are written for x86_64 and aarch64 only"
#endif

#define SIG_BLOCK 0
#define WNOHANG 1
#define SIGINT 2
#define SIGTERM 15
#define SIGCHLD 17

static long sys4(long n, long a, long b, long c, long d) {
#if defined(__x86_64__)
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall"
                     : "=a"(ret)
                     : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
#else
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
#endif
}

static __attribute__((noreturn)) void sys_exit(int code) {
    for (;;) {
        sys4(SYS_exit, code, 0, 0, 0);
    }
}

/* Reaps every child that has exited; returns when none is left to reap now. */
static void reap(void) {
    while (sys4(SYS_wait4, -1, 0, WNOHANG, 0) > 0) {
    }
}

#if defined(__x86_64__)
/* The kernel enters _start with a 16-byte aligned stack and no return address. */
__attribute__((force_align_arg_pointer))
#endif
__attribute__((noreturn)) void _start(void) {
    unsigned long set = (1UL << (SIGCHLD - 1)) | (1UL << (SIGINT - 1)) | (1UL << (SIGTERM - 1));
    /* Blocked signals stay pending, so none is lost between the reap and the wait. */
    sys4(SYS_rt_sigprocmask, SIG_BLOCK, (long)&set, 0, sizeof set);
    for (;;) {
        reap();
        long sig = sys4(SYS_rt_sigtimedwait, (long)&set, 0, 0, sizeof set);
        if (sig == SIGINT || sig == SIGTERM) {
            sys_exit(0);
        }
    }
}
