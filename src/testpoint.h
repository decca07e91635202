/*
 * testpoint.h - named pause points for the crash tests.
 *
 * The sync engine calls retl_testpoint("name") on both sides of every
 * state commit (and at a run's start and end).  With the environment
 * variable RETL_TEST_PAUSE_AT=<name>:<n> set, the n-th time <name> is
 * reached the process writes "retl: paused at <name>" to stderr and stops
 * itself (SIGSTOP); a test then kills it there with SIGKILL and checks
 * that the state store and the destination still agree.  Unset (always, in
 * production) a point costs one branch.  Points are counted per process.
 */
#ifndef RETL_TESTPOINT_H
#define RETL_TESTPOINT_H

void retl_testpoint(const char *name);

#endif
