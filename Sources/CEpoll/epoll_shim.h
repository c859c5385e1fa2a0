/* Linux's epoll, eventfd and accept4, which the Glibc module does not export: the relay's own
 * event loop (Sources/SSSonectorCore/Epoll) calls them directly. No socket header is included
 * here: its declarations would then belong to this module, and files that import only Glibc
 * would lose them. */
#ifndef SSSONECTOR_EPOLL_SHIM_H
#define SSSONECTOR_EPOLL_SHIM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>

struct sockaddr;
/* <sys/socket.h> declares it only with _GNU_SOURCE, which the Glibc module is built without
 * (the length is a socklen_t, an unsigned int). */
extern int accept4(int fd, struct sockaddr *address, unsigned int *length, int flags);

/* <fcntl.h> and <unistd.h> declare these only with _GNU_SOURCE too: the zero-copy path for
 * directions no stage inspects moves bytes socket -> pipe -> socket inside the kernel. */
extern int pipe2(int fds[2], int flags);
extern long splice(int fd_in, long *off_in, int fd_out, long *off_out, unsigned long length, unsigned int flags);
#endif
