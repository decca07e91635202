/*
 * test_salesforce_spool.c - the Salesforce spool read back as untrusted
 * input (salesforce_spool.c): records round-trip; a record whose lengths
 * do not fit in the file is refused before anything is allocated from
 * them; spools and job maps are created 0600.
 *
 * Before issue 13 a header of "268435456 268435456 268435456" (three
 * lengths at the 256 MiB cap) made the reader grow its buffer to 768 MiB
 * before the short fread found the file was 20 bytes long: the buffer's
 * capacity below is what shows it.  And fopen(..., "w+") created the spool
 * 0666 & ~umask, so 0666 under the umask 0 set here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "salesforce_int.h"
#include "private_file.h"
#include "test.h"

static FILE *spool_of(const char *bytes, size_t n)
{
	FILE *f = tmpfile();
	CHECK(f != NULL);
	CHECK(fwrite(bytes, 1, n, f) == n);
	CHECK(fflush(f) == 0 && fseek(f, 0, SEEK_SET) == 0);
	return f;
}

static void test_round_trip(void)
{
	FILE *f = tmpfile();
	retl_buf b = RETL_BUF_INIT;
	struct retl_op op, in;
	static char big[200000];

	memset(big, 'x', sizeof(big));
	memset(&in, 0, sizeof(in));
	in.key = "k1";
	in.dest_id = "001";
	in.payload = "{\"a\":1}";
	in.payload_len = 7;
	CHECK(sf_spool_put(f, &in) == 0);
	in.key = "k2";
	in.dest_id = NULL;
	in.payload = big;       /* above the size that asks the file */
	in.payload_len = sizeof(big);
	CHECK(sf_spool_put(f, &in) == 0);
	CHECK(fflush(f) == 0 && fseek(f, 0, SEEK_SET) == 0);
	CHECK(sf_spool_get(f, &b, &op) == 1);
	CHECK_STR(op.key, "k1");
	CHECK_STR(op.dest_id, "001");
	CHECK(op.payload_len == 7 && !memcmp(op.payload, "{\"a\":1}", 7));
	CHECK(sf_spool_get(f, &b, &op) == 1);
	CHECK_STR(op.key, "k2");
	CHECK(op.dest_id == NULL);
	CHECK(op.payload_len == sizeof(big) && !memcmp(op.payload, big, sizeof(big)));
	CHECK(sf_spool_get(f, &b, &op) == 0);
	retl_buf_free(&b);
	fclose(f);
}

static void test_hostile(void)
{
	retl_buf b = RETL_BUF_INIT;
	struct retl_op op;
	FILE *f;

	/* lengths at the cap, a file of a few bytes */
	static const char huge[] = "268435456 268435456 268435456\nkey\n";
	f = spool_of(huge, sizeof(huge) - 1);
	CHECK(sf_spool_get(f, &b, &op) == -1);
	CHECK(b.cap < ((size_t)1 << 20));
	fclose(f);

	/* over the cap; a length that wraps when added to the others */
	static const char over[] = "18446744073709551615 - -\nk\n";
	f = spool_of(over, sizeof(over) - 1);
	CHECK(sf_spool_get(f, &b, &op) == -1);
	CHECK(b.cap < ((size_t)1 << 20));
	fclose(f);

	/* one good record, then one cut short: the first is read */
	static const char cut[] = "1 - 2\nk{}\n5 - 100\nk2";
	f = spool_of(cut, sizeof(cut) - 1);
	CHECK(sf_spool_get(f, &b, &op) == 1);
	CHECK_STR(op.key, "k");
	CHECK(sf_spool_get(f, &b, &op) == -1);
	fclose(f);

	/* no key; a header that does not parse; no final newline */
	static const char *const bad[] = { "- - 2\n{}\n", "x y z\n", "1 - -\nkX" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		f = spool_of(bad[i], strlen(bad[i]));
		CHECK(sf_spool_get(f, &b, &op) == -1);
		fclose(f);
	}

	struct retl_err err;
	retl_err_clear(&err);
	CHECK(sf_spool_damaged("/x/s.upsert.spool", &err) == -1);
	CHECK(strstr(err.msg, "/x/s.upsert.spool") && strstr(err.msg, "damaged"));
	retl_buf_free(&b);
}

static void test_private(void)
{
	char dir[] = "/tmp/retl-test-spool-XXXXXX", path[256];
	struct stat sb;
	FILE *f;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/s.upsert.spool", dir);
	mode_t old = umask(0);
	f = retl_fopen_private(path, "w+", 1);
	CHECK(f != NULL);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	fclose(f);
	/* one left by an older run with other modes is made private */
	CHECK(chmod(path, 0644) == 0);
	f = retl_fopen_private(path, "w", 1);
	CHECK(f != NULL);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600);
	CHECK(sb.st_size == 0);
	fclose(f);
	umask(old);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	test_round_trip();
	test_hostile();
	test_private();
	TEST_DONE();
}
