/*
 * private_file.c - files holding warehouse data, created 0600; see
 * private_file.h.
 */
#include "private_file.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

FILE *retl_fopen_private(const char *path, const char *mode, int own)
{
	int flags = (strchr(mode, '+') ? O_RDWR : O_WRONLY) | O_CREAT | O_TRUNC |
		    O_CLOEXEC;
	int fd = open(path, flags, 0600);
	if (fd < 0)
		return NULL;
	FILE *f = !own || fchmod(fd, 0600) == 0 ? fdopen(fd, mode) : NULL;
	if (!f) {
		int e = errno;
		close(fd);
		errno = e;
	}
	return f;
}
