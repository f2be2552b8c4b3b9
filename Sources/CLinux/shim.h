#ifndef CLINUX_SHIM_H
#define CLINUX_SHIM_H
/* Linux interfaces Glibc's Swift module lacks: epoll, eventfd, malloc tuning, thread names. */
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <malloc.h>
#include <stdint.h>
#include <fcntl.h>

/* glibc declares accept4 only under _GNU_SOURCE; <sys/socket.h> stays Glibc's (including it here would
   take its declarations away from Swift's Glibc module). SOCK_NONBLOCK and SOCK_CLOEXEC equal O_NONBLOCK
   and O_CLOEXEC on Linux. */
struct sockaddr;
extern int accept4(int sockfd, struct sockaddr *addr, unsigned int *addrlen, int flags);
static inline int clinux_accept4_nonblocking(int fd, struct sockaddr *addr, unsigned int *len) {
    return accept4(fd, addr, len, O_NONBLOCK | O_CLOEXEC);
}

/* The calling thread's kernel name (what top -H, /proc/<pid>/task/<tid>/comm and perf show): prctl, which
   glibc declares in <sys/prctl.h> only; the kernel cuts the name to 15 bytes. */
#include <linux/prctl.h>
extern int prctl(int option, ...);
static inline int clinux_set_thread_name(const char *name) { return prctl(PR_SET_NAME, name, 0, 0, 0); }
static inline int clinux_get_thread_name(char out[16]) { return prctl(PR_GET_NAME, out, 0, 0, 0); }

/* struct epoll_event is packed on x86-64, which Swift cannot lay out; these take and give plain fields. */
typedef struct { uint32_t events; uint64_t data; } clinux_epoll_event;

static inline int clinux_epoll_ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.u64 = data;
    return epoll_ctl(epfd, op, fd, &ev);
}

static inline int clinux_epoll_wait(int epfd, clinux_epoll_event *out, int max, int timeout_ms) {
    struct epoll_event evs[256];
    if (max > 256) max = 256;
    int n = epoll_wait(epfd, evs, max, timeout_ms);
    for (int i = 0; i < n; i++) { out[i].events = evs[i].events; out[i].data = evs[i].data.u64; }
    return n;
}

static inline uint32_t clinux_epollin(void) { return EPOLLIN; }
static inline uint32_t clinux_epollout(void) { return EPOLLOUT; }
static inline uint32_t clinux_epollrdhup(void) { return EPOLLRDHUP; }
static inline uint32_t clinux_epollerr(void) { return EPOLLERR; }
static inline uint32_t clinux_epollhup(void) { return EPOLLHUP; }
static inline uint32_t clinux_epolloneshot(void) { return EPOLLONESHOT; }
#endif
