/*
 * redact.c - the process-wide list of secrets, see redact.h.
 *
 * config.c registers every secret it resolves; anything that prints or
 * stores outside text passes it through retl_redact_into() first.  The list
 * is kept sorted longest first, so a secret that contains another one (a
 * DSN and the password inside it) is replaced whole rather than leaving the
 * rest of the longer one behind.  A mutex guards the list: the daemon's
 * HTTP thread may log while a sync registers secrets.
 */
#include "redact.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define REDACTED "[REDACTED]"
#define MIN_SECRET 4

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char **secrets;
static size_t *lens;
static size_t nsecrets, capsecrets;

static void add_locked(const char *s, size_t len)
{
	if (len < MIN_SECRET)
		return;
	size_t at = nsecrets;
	for (size_t i = 0; i < nsecrets; i++) {
		if (lens[i] == len && !memcmp(secrets[i], s, len))
			return;
		if (lens[i] < len && at == nsecrets)
			at = i;
	}
	if (nsecrets == capsecrets) {
		capsecrets = capsecrets ? capsecrets * 2 : 8;
		secrets = retl_realloc(secrets, capsecrets * sizeof(*secrets));
		lens = retl_realloc(lens, capsecrets * sizeof(*lens));
	}
	memmove(secrets + at + 1, secrets + at, (nsecrets - at) * sizeof(*secrets));
	memmove(lens + at + 1, lens + at, (nsecrets - at) * sizeof(*lens));
	secrets[at] = retl_strndup(s, len);
	lens[at] = len;
	nsecrets++;
}

void retl_redact_add(const char *secret)
{
	if (!secret)
		return;
	pthread_mutex_lock(&lock);
	add_locked(secret, strlen(secret));
	pthread_mutex_unlock(&lock);
}

static void redact_locked(retl_buf *out, const char *s, size_t len)
{
	size_t start = 0, i = 0;
	while (i < len) {
		size_t hit = 0;
		for (size_t k = 0; k < nsecrets; k++) {
			if (lens[k] <= len - i && secrets[k][0] == s[i] &&
			    !memcmp(secrets[k], s + i, lens[k])) {
				hit = lens[k];
				break;
			}
		}
		if (!hit) {
			i++;
			continue;
		}
		retl_buf_add(out, s + start, i - start);
		retl_buf_add(out, REDACTED, sizeof(REDACTED) - 1);
		i += hit;
		start = i;
	}
	retl_buf_add(out, s + start, len - start);
}

void retl_redact_into(retl_buf *out, const char *s, size_t len)
{
	pthread_mutex_lock(&lock);
	redact_locked(out, s, len);
	pthread_mutex_unlock(&lock);
}

void retl_redact_str(char *s, size_t cap)
{
	if (!s || !cap)
		return;
	retl_buf b = RETL_BUF_INIT;
	pthread_mutex_lock(&lock);
	int any = nsecrets > 0;
	if (any)
		redact_locked(&b, s, strnlen(s, cap - 1));
	pthread_mutex_unlock(&lock);
	if (any) {
		size_t n = b.len < cap - 1 ? b.len : cap - 1;
		memcpy(s, retl_buf_cstr(&b), n);
		s[n] = '\0';
	}
	retl_buf_free(&b);
}

/*
 * The password as written in a URI DSN (still percent-encoded), so the raw
 * form is redacted too when the DSN itself ends up in a message.
 */
static void add_uri_raw_password(const char *dsn)
{
	const char *p = strstr(dsn, "://");
	if (!p)
		return;
	p += 3;
	size_t auth = strcspn(p, "/?#");
	const char *at = memrchr(p, '@', auth);
	if (!at)
		return;
	const char *colon = memchr(p, ':', (size_t)(at - p));
	if (!colon)
		return;
	add_locked(colon + 1, (size_t)(at - colon - 1));
}

void retl_redact_dsn_password(const char *dsn)
{
	if (!dsn)
		return;
	char *errmsg = NULL;
	PQconninfoOption *opts = PQconninfoParse(dsn, &errmsg);
	if (errmsg)
		PQfreemem(errmsg);
	pthread_mutex_lock(&lock);
	if (opts) {
		for (PQconninfoOption *o = opts; o->keyword; o++)
			if (!strcmp(o->keyword, "password") && o->val)
				add_locked(o->val, strlen(o->val));
		PQconninfoFree(opts);
	}
	add_uri_raw_password(dsn);
	pthread_mutex_unlock(&lock);
}

void retl_redact_clear(void)
{
	pthread_mutex_lock(&lock);
	for (size_t i = 0; i < nsecrets; i++)
		free(secrets[i]);
	free(secrets);
	free(lens);
	secrets = NULL;
	lens = NULL;
	nsecrets = capsecrets = 0;
	pthread_mutex_unlock(&lock);
}
