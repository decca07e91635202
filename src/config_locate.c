/*
 * config_locate.c - where in a JSON file a value is, by its dotted path.
 *
 * jansson keeps no positions for the values it parsed, so an error found
 * after parsing (an unset ${VAR}, a secret file that cannot be read, a
 * value checked once its secret is in) would name only the key's path.
 * This scanner walks the file's text along that path ("sources.wh.dsn",
 * "headers[1]") and gives the value's line and column, so the message can
 * read "retl.json:7:14: sources.wh.dsn: ..." as syntax errors do.  A key
 * may itself hold a dot (a field "merge_fields.FNAME"): every key that
 * fits the path's next part is tried in the file's order, the first that
 * leads to the whole path wins.  Best effort: any surprise (the
 * file changed since it was loaded, a path not found) gives -1 and the
 * message stays as it was.
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct scan {
	const char *s;
	size_t n, i;
};

static void skip_ws(struct scan *sc)
{
	while (sc->i < sc->n && strchr(" \t\r\n", sc->s[sc->i]))
		sc->i++;
}

/* at a quote: past the closing one; start and len: the raw content */
static int skip_string(struct scan *sc, size_t *start, size_t *len)
{
	if (sc->i >= sc->n || sc->s[sc->i] != '"')
		return -1;
	size_t b = ++sc->i;
	while (sc->i < sc->n && sc->s[sc->i] != '"')
		sc->i += sc->s[sc->i] == '\\' ? 2 : 1;
	if (sc->i >= sc->n)
		return -1;
	if (start) {
		*start = b;
		*len = sc->i - b;
	}
	sc->i++;
	return 0;
}

static int skip_value(struct scan *sc)
{
	skip_ws(sc);
	if (sc->i >= sc->n)
		return -1;
	char ch = sc->s[sc->i];
	if (ch == '"')
		return skip_string(sc, NULL, NULL);
	if (ch != '{' && ch != '[') {
		while (sc->i < sc->n && !strchr(",}] \t\r\n", sc->s[sc->i]))
			sc->i++;
		return 0;
	}
	int depth = 0;
	while (sc->i < sc->n) {
		ch = sc->s[sc->i];
		if (ch == '"') {
			if (skip_string(sc, NULL, NULL) < 0)
				return -1;
			continue;
		}
		sc->i++;
		if (ch == '{' || ch == '[')
			depth++;
		else if ((ch == '}' || ch == ']') && --depth == 0)
			return 0;
	}
	return -1;
}

/* the value at path inside the value at sc->i; sc->i is left on it */
static int find(struct scan *sc, const char *path)
{
	skip_ws(sc);
	if (!*path)
		return 0;
	if (sc->i >= sc->n)
		return -1;
	if (*path == '[') {
		char *end;
		long want = strtol(path + 1, &end, 10);
		if (*end != ']' || sc->s[sc->i] != '[')
			return -1;
		sc->i++;
		for (long k = 0;; k++) {
			skip_ws(sc);
			if (k == want)
				return find(sc, end[1] == '.' ? end + 2 : end + 1);
			if (skip_value(sc) < 0)
				return -1;
			skip_ws(sc);
			if (sc->i >= sc->n || sc->s[sc->i] != ',')
				return -1;
			sc->i++;
		}
	}
	if (sc->s[sc->i] != '{')
		return -1;
	sc->i++;
	for (;;) {
		size_t k, klen, plen = strlen(path);
		skip_ws(sc);
		if (skip_string(sc, &k, &klen) < 0)
			return -1;
		skip_ws(sc);
		if (sc->i >= sc->n || sc->s[sc->i] != ':')
			return -1;
		sc->i++;
		skip_ws(sc);
		if (klen <= plen && !strncmp(path, sc->s + k, klen) &&
		    strchr(".[", path[klen])) { /* NUL too: the end */
			/* this key may be the path's next part: try it; a
			 * dead end backtracks to the keys after it */
			struct scan sub = *sc;
			const char *rest = path + klen;
			if (find(&sub, *rest == '.' ? rest + 1 : rest) == 0) {
				*sc = sub;
				return 0;
			}
		}
		if (skip_value(sc) < 0)
			return -1;
		skip_ws(sc);
		if (sc->i < sc->n && sc->s[sc->i] == ',') {
			sc->i++;
			continue;
		}
		return -1;
	}
}

int retl_cfg_locate(const char *text, size_t n, const char *path,
		    int *line, int *col)
{
	struct scan sc = { text, n, 0 };
	if (find(&sc, path) < 0 || sc.i >= n)
		return -1;
	*line = 1;
	*col = 1;
	for (size_t i = 0; i < sc.i; i++) {
		if (text[i] == '\n') {
			++*line;
			*col = 1;
		} else {
			++*col;
		}
	}
	return 0;
}

/*
 * "FILE: PATH: what" -> "FILE:LINE:COL: PATH: what", with FILE read from
 * the project directory now.  Left as it is when the path is not found.
 */
void retl_cfg_add_position(const char *dir, const char *file,
			   struct retl_err *err)
{
	size_t fl = strlen(file);
	if (strncmp(err->msg, file, fl) || strncmp(err->msg + fl, ": ", 2))
		return;
	const char *path = err->msg + fl + 2, *end = strstr(path, ": ");
	if (!end)
		return;
	char *full = retl_cfg_join_dir(dir, file);
	FILE *f = fopen(full, "rb");
	free(full);
	if (!f)
		return;
	retl_buf text = RETL_BUF_INIT;
	char chunk[4096];
	size_t got;
	while ((got = fread(chunk, 1, sizeof(chunk), f)) > 0)
		retl_buf_add(&text, chunk, got);
	fclose(f);
	char *p = retl_strndup(path, (size_t)(end - path));
	int line, col;
	if (text.len && retl_cfg_locate(text.ptr, text.len, p, &line, &col) == 0) {
		retl_buf m = RETL_BUF_INIT;
		retl_buf_addf(&m, "%s:%d:%d: %s", file, line, col, path);
		snprintf(err->msg, sizeof(err->msg), "%s", m.ptr);
		retl_buf_free(&m);
	}
	free(p);
	retl_buf_free(&text);
}
