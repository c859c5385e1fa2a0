/* hiredis (Debian's libhiredis-dev), the Redis client of ratelimit's shared budget. */
#include <hiredis/hiredis.h>
#include <hiredis/async.h>
/* The link's wake-up descriptor (Glibc's Swift module does not carry eventfd). */
#include <sys/eventfd.h>
