/*
 * private_file.h - the files retl writes that hold warehouse data
 * (planned payloads, Salesforce spools and job maps): created 0600, which
 * a umask can only keep, never widen.
 */
#ifndef RETL_PRIVATE_FILE_H
#define RETL_PRIVATE_FILE_H

#include <stdio.h>

/*
 * path opened with mode "w" or "w+": created (0600) or cut empty.  own: a
 * file of retl's own, so one already there is made 0600 too; otherwise (a
 * file the user named, `plan --out`) it keeps the mode its owner gave it,
 * and a pipe or /dev/stdout works.  NULL with errno set.
 */
FILE *retl_fopen_private(const char *path, const char *mode, int own);

#endif
