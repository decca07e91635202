/*
 * progress.h - the progress bar on stderr, only when stderr is a TTY
 * (and not in JSON log mode): rows read, rows/s, sent, failed.
 * Redrawn at most ten times a second.
 */
#ifndef RETL_PROGRESS_H
#define RETL_PROGRESS_H

void retl_progress_start(const char *sync);
void retl_progress_update(long read, long sent, long failed);
void retl_progress_stop(void);
/* used by log.c to print a line under a live bar */
void retl_progress_clear(void);
void retl_progress_redraw(void);

#endif
