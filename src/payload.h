/*
 * payload.h - reading a mapped payload without building a JSON tree.
 *
 * The mapping writes each row's payload as canonical JSON (compact, an
 * object at the top).  Every destination walks it with this one reader,
 * once per row, the way curl's strparse reads a header: pointers into the
 * text, no allocation, nothing copied until the caller asks for a decoded
 * string.  A value is handed over as its raw JSON text and its kind, so a
 * destination can copy it as it is (most values), decode a string
 * (retl_pv_string), or open an object or array to walk it in turn.
 *
 * The text is still treated as untrusted: anything that is not JSON makes
 * the reader return -1 (the row is rejected with "payload is not a JSON
 * object"), never a read past the end.  White space is allowed where JSON
 * allows it, so spooled or hand-written payloads read the same.
 */
#ifndef RETL_PAYLOAD_H
#define RETL_PAYLOAD_H

#include <stddef.h>

#include "buf.h"

enum retl_pv_kind {
	RETL_PV_STRING,
	RETL_PV_NUMBER,
	RETL_PV_TRUE,
	RETL_PV_FALSE,
	RETL_PV_NULL,
	RETL_PV_ARRAY,
	RETL_PV_OBJECT,
};

/* a value: its kind and its JSON text (a string with its quotes) */
struct retl_pv {
	enum retl_pv_kind kind;
	const char *raw;
	size_t len;
	int checked;              /* inside a text retl_json_doc vouched for:
				   * walked without checking it again */
};

/* an object member: its name as written (without the quotes, escapes
 * left in: compare with retl_pfield_is) and its value */
struct retl_pfield {
	const char *name;
	size_t name_len;
	struct retl_pv v;
};

/* a position inside one object or array; the caller's, on the stack */
struct retl_preader {
	const char *p, *e;
	char close;               /* '}' or ']' */
	int started;
	int checked;              /* see struct retl_pv */
};

/*
 * Starts reading a payload: an object at the top.  Counts one payload read
 * (retl_payload_reads).  -1 if the text does not start an object.
 */
int retl_payload_open(struct retl_preader *r, const char *json, size_t len);
/* starts reading the members of an object value or the items of an array
 * value; -1 if v is neither */
int retl_pv_open(struct retl_preader *r, const struct retl_pv *v);
/* the next member of an object: 1, 0 at its end, -1 if malformed */
int retl_payload_next(struct retl_preader *r, struct retl_pfield *f);
/* the next item of an array: 1, 0 at its end, -1 if malformed */
int retl_payload_item(struct retl_preader *r, struct retl_pv *v);

/* does the member's name equal name (escapes decoded)? */
int retl_pfield_is(const struct retl_pfield *f, const char *name);
/* appends the member's decoded name to out */
void retl_pfield_name(const struct retl_pfield *f, retl_buf *out);
/* appends a string value decoded (UTF-8; may hold NUL bytes from \u0000)
 * to out; -1 (out unchanged) if v is not a valid string */
int retl_pv_string(const struct retl_pv *v, retl_buf *out);
/* decodes the JSON string literal s[0..n) (quotes included) into out */
int retl_json_str_decode(const char *s, size_t n, retl_buf *out);

/*
 * The member `name` of the payload, found by one walk of it: 1 found, 0 not
 * there, -1 malformed.  For the rare reader that needs one member before
 * walking the rest (it counts as a payload read: prefer one walk).
 */
int retl_payload_get(const char *json, size_t len, const char *name,
		     struct retl_pv *out);

/*
 * The payload object again, into out, without the members for which
 * skip(ud, f) is true (as written: names, values and order kept).  0, or
 * -1 malformed (out then holds what was written so far).  For values a
 * destination must leave out of one write (a field someone owns).
 */
int retl_payload_without(const char *json, size_t len,
			 int (*skip)(void *ud, const struct retl_pfield *f), void *ud,
			 retl_buf *out);

/*
 * An answer read without a tree: 1 when text[0..len) is one JSON object
 * (white space around it allowed) that jansson's json_loadb (flags 0)
 * would read to the same values, with *top its text; 0 otherwise, and the
 * caller parses it with jansson as before.  "The same" is kept narrow on
 * purpose: valid UTF-8, no \u0000 and no lone surrogate in any string
 * (jansson refuses the whole text for any of these), and numbers only as
 * integers of at most 18 digits (jansson refuses an integer that
 * overflows, and reads every other number as a double).  A decoder can
 * then walk *top with retl_pv_open and get what jansson would have given.
 */
int retl_json_doc(const char *text, size_t len, struct retl_pv *top);

/* payloads opened so far in this process (tests check that a destination
 * reads each row's payload once) */
unsigned long retl_payload_reads(void);

#endif
