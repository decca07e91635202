/*
 * test_pgwait.c - the connection parameters retl adds to a DSN, and the
 * connect loop against a real socket that accepts and never answers.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgwait.h"
#include "stop.h"
#include "test.h"

/* the value retl passes for key, NULL when it passes none */
static const char *param(const struct retl_pg_params *p, const char *key)
{
	for (size_t i = 0; p->keys[i]; i++)
		if (!strcmp(p->keys[i], key))
			return p->vals[i];
	return NULL;
}

static void test_defaults_added(void)
{
	struct retl_pg_params p;
	char msg[256];
	const char *dsn = "host=/tmp port=5432 user=u dbname=d password=pw";
	CHECK(retl_pg_params_init(&p, dsn, 10000, msg, sizeof(msg)) == 0);
	/* the DSN first, as written, for libpq to expand */
	CHECK_STR(p.keys[0], "dbname");
	CHECK(p.vals[0] == dsn);
	CHECK(p.timeout_ms == 10000);
	CHECK(!p.timeout_from_dsn);
	CHECK_STR(param(&p, "connect_timeout"), "10");
	CHECK_STR(param(&p, "keepalives"), "1");
	CHECK_STR(param(&p, "keepalives_idle"), "30");
	CHECK_STR(param(&p, "keepalives_interval"), "10");
	CHECK_STR(param(&p, "keepalives_count"), "3");

	/* a bare database name is a DSN too (libpq's rule) */
	CHECK(retl_pg_params_init(&p, "mydb", 1500, msg, sizeof(msg)) == 0);
	CHECK(p.timeout_ms == 1500);
	CHECK_STR(param(&p, "connect_timeout"), "2");
	CHECK_STR(param(&p, "keepalives_idle"), "30");

	/* connect_timeout 0: wait for ever, nothing added */
	CHECK(retl_pg_params_init(&p, "host=h", 0, msg, sizeof(msg)) == 0);
	CHECK(p.timeout_ms == 0);
	CHECK(param(&p, "connect_timeout") == NULL);
	CHECK_STR(param(&p, "keepalives"), "1");
	CHECK(p.nhosts == 0);
	retl_pg_params_free(&p);
}

static void test_host_lists(void)
{
	struct retl_pg_params p;
	char msg[256];
	CHECK(retl_pg_params_init(&p, "host=a,b,c port=1,2,3", 1000, msg,
				  sizeof(msg)) == 0);
	CHECK(p.nhosts == 3);
	CHECK_STR(p.hosts, "a,b,c");
	CHECK_STR(p.ports, "1,2,3");
	CHECK(p.hostaddrs == NULL);
	retl_pg_params_free(&p);
	/* one port for every host: the DSN's own */
	CHECK(retl_pg_params_init(&p, "postgresql://u@a:5432,b:5432/d", 1000, msg,
				  sizeof(msg)) == 0);
	CHECK(p.nhosts == 2);
	retl_pg_params_free(&p);
	CHECK(retl_pg_params_init(&p, "hostaddr=10.0.0.1,10.0.0.2 port=5432", 1000,
				  msg, sizeof(msg)) == 0);
	CHECK(p.nhosts == 2 && p.hosts == NULL && p.ports == NULL);
	CHECK_STR(p.hostaddrs, "10.0.0.1,10.0.0.2");
	retl_pg_params_free(&p);
	/* left to libpq: an empty entry, or lists that do not match */
	const char *odd[] = { "host=a,,b", "host=a, port=1", "host=a,b port=1,2,3",
			      "host=a,b hostaddr=10.0.0.1" };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		CHECK(retl_pg_params_init(&p, odd[i], 1000, msg, sizeof(msg)) == 0);
		CHECK(p.nhosts == 0);
		retl_pg_params_free(&p);
	}
}

static void test_dsn_keeps_its_own(void)
{
	struct retl_pg_params p;
	char msg[256];
	CHECK(retl_pg_params_init(&p,
		"postgresql://u:pw@db.example:6432/d?connect_timeout=3&keepalives_idle=5",
		10000, msg, sizeof(msg)) == 0);
	CHECK(p.timeout_ms == 3000);
	CHECK(p.timeout_from_dsn);
	CHECK(param(&p, "connect_timeout") == NULL);
	CHECK(param(&p, "keepalives_idle") == NULL);
	CHECK_STR(param(&p, "keepalives_interval"), "10");
	CHECK_STR(param(&p, "keepalives_count"), "3");

	CHECK(retl_pg_params_init(&p, "host=h keepalives=0 connect_timeout=0",
				  10000, msg, sizeof(msg)) == 0);
	CHECK(p.timeout_ms == 0 && p.timeout_from_dsn);
	CHECK(param(&p, "keepalives") == NULL);
	/* libpq reads 1 as 2 seconds */
	CHECK(retl_pg_params_init(&p, "host=h connect_timeout=1", 10000, msg,
				  sizeof(msg)) == 0);
	CHECK(p.timeout_ms == 2000);

	CHECK(retl_pg_params_init(&p, "host=h connect_timeout=soon", 10000, msg,
				  sizeof(msg)) < 0);
	CHECK_STR(msg, "invalid integer value \"soon\" for connection option \"connect_timeout\"");
	CHECK(retl_pg_params_init(&p, "host='h", 10000, msg, sizeof(msg)) < 0);
	CHECK(strstr(msg, "unterminated quoted string") != NULL);
	retl_pg_params_free(&p);
}

/* a listening socket on 127.0.0.1 that nobody accepts from: the kernel
 * completes the handshake, and no byte ever comes back */
static int silent_server(int *port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(fd, 8) < 0 || getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	*port = ntohs(a.sin_port);
	return fd;
}

static void test_connect_deadline_and_stop(void)
{
	int port;
	int fd = silent_server(&port);
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	char dsn[128], msg[256];
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=u dbname=d "
		 "sslmode=disable gssencmode=disable", port);
	struct retl_pg_params p;
	PGconn *c = NULL;
	retl_buf why = RETL_BUF_INIT;
	char want[256];

	CHECK(retl_pg_params_init(&p, dsn, 200, msg, sizeof(msg)) == 0);
	CHECK(retl_pg_connect(&c, &p, &why) == RETL_PG_TIMEDOUT);
	CHECK(c != NULL);
	CHECK_STR(PQhost(c), "127.0.0.1");
	snprintf(want, sizeof(want),
		 "127.0.0.1:%d: no answer within 0.2 s (connect_timeout)", port);
	CHECK_STR(retl_buf_cstr(&why), want);
	PQfinish(c);

	/* no deadline: only the stop flag ends it */
	CHECK(retl_pg_params_init(&p, dsn, 0, msg, sizeof(msg)) == 0);
	retl_stop_request();
	CHECK(retl_pg_connect(&c, &p, &why) == RETL_PG_STOPPED);
	retl_stop_reset();
	PQfinish(c);

	/* two hosts: the silent one times out, the next is tried */
	int port2;
	int fd2 = silent_server(&port2);
	close(fd2);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1,127.0.0.1 port=%d,%d user=u "
		 "dbname=d sslmode=disable gssencmode=disable", port, port2);
	CHECK(retl_pg_params_init(&p, dsn, 200, msg, sizeof(msg)) == 0);
	CHECK(p.nhosts == 2);
	CHECK(retl_pg_connect(&c, &p, &why) == RETL_PG_FAILED);
	snprintf(want, sizeof(want),
		 "127.0.0.1:%d: no answer within 0.2 s (connect_timeout); ", port);
	CHECK(!strncmp(retl_buf_cstr(&why), want, strlen(want)));
	CHECK(strstr(retl_buf_cstr(&why), "refused") != NULL);
	/* the last host's connection is the one handed back */
	snprintf(want, sizeof(want), "%d", port2);
	CHECK_STR(PQport(c), want);
	PQfinish(c);
	retl_pg_params_free(&p);

	/* nothing listens: libpq's own failure */
	close(fd);
	snprintf(dsn, sizeof(dsn), "host=127.0.0.1 port=%d user=u dbname=d "
		 "sslmode=disable gssencmode=disable", port);
	CHECK(retl_pg_params_init(&p, dsn, 5000, msg, sizeof(msg)) == 0);
	CHECK(retl_pg_connect(&c, &p, &why) == RETL_PG_FAILED);
	CHECK(strstr(PQerrorMessage(c), "refused") != NULL);
	CHECK(strstr(retl_buf_cstr(&why), "refused") != NULL);
	CHECK(!strchr(retl_buf_cstr(&why), '\n'));
	PQfinish(c);
	retl_buf_free(&why);
}

int main(void)
{
	test_defaults_added();
	test_dsn_keeps_its_own();
	test_host_lists();
	test_connect_deadline_and_stop();
	TEST_DONE();
}
