// libltdl (GNU libtool's portable dlopen wrapper) and the POSIX dlopen used only to explain
// load failures that libltdl reports as "file not found".
#include <ltdl.h>
#include <dlfcn.h>
