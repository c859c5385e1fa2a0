/* Linux's epoll, eventfd and accept4, which the Glibc module does not export: the relay's own
 * event loop (Sources/SSSonectorCore/Epoll) calls them directly. */
#ifndef SSSONECTOR_EPOLL_SHIM_H
#define SSSONECTOR_EPOLL_SHIM_H
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

/* Declared by <sys/socket.h> only with _GNU_SOURCE, which the Glibc module is built without. */
extern int accept4(int fd, struct sockaddr *address, socklen_t *length, int flags);
#endif
