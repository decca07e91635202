/*
 * stop.c - the process-wide "asked to stop" flag (stop.h).
 */
#include "stop.h"

#include <signal.h>

static volatile sig_atomic_t stop_flag;

void retl_stop_request(void)
{
	stop_flag = 1;
}

int retl_stop_requested(void)
{
	return stop_flag;
}

void retl_stop_reset(void)
{
	stop_flag = 0;
}
