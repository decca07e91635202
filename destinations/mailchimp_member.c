/*
 * mailchimp_member.c - one payload into a Mailchimp member object, read
 * once with the payload reader.
 *
 *   email_address        trimmed; the member's identity (first in the object)
 *   merge_fields.TAG     null clears (""), booleans "true"/"false", other
 *                        values as they are; a list is refused.  An address
 *                        field takes an object (from dotted targets
 *                        merge_fields.ADDR.addr1) written as the spec's
 *                        address: addr1, city, state, zip always, as text
 *                        (null: ""), addr2 and country when set; an address
 *                        with no part set clears the field ("")
 *   tags                 a list of names, or one name (empty names dropped);
 *                        null: no tags.  Not a member field of the endpoints
 *                        retl writes members with: the names go to the
 *                        caller's list only (mailchimp.c sends them through
 *                        the tags endpoint)
 *   vip                  a boolean (null: false)
 *   language, email_type a string; null leaves it as it is (Mailchimp has
 *                        no "unset" for them)
 *   anything else        as it is (location, interests); null is left out
 *
 * No status: mailchimp.c adds "status" (batch subscribe) or "status_if_new"
 * (PUT …/members/{hash}) in front, whichever request carries the member.
 */
#include <ctype.h>
#include <string.h>

#include "mailchimp_int.h"
#include "payload.h"

static int is_empty_str(const struct retl_pv *v)
{
	return v->kind == RETL_PV_STRING && v->len == 2;
}

static const char *const addr_parts[] = {
	"addr1", "city", "state", "zip", "addr2", "country", NULL
};
#define ADDR_REQUIRED 4   /* the first four: the spec's required parts */

/* an address merge field's parts; -1 with a reason */
static int add_address(const struct retl_pfield *mf, retl_buf *o, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pfield f;
	retl_buf part[6] = { RETL_BUF_INIT, RETL_BUF_INIT, RETL_BUF_INIT,
			     RETL_BUF_INIT, RETL_BUF_INIT, RETL_BUF_INIT };
	int rc, set = 0, k;

	retl_pv_open(&r, &mf->v);
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		for (k = 0; addr_parts[k] && !retl_pfield_is(&f, addr_parts[k]); k++)
			;
		const char *why = !addr_parts[k] ?
			": not a part of a Mailchimp address (addr1, addr2, city, state, zip, country)" :
			f.v.kind == RETL_PV_STRING || f.v.kind == RETL_PV_NUMBER ||
			f.v.kind == RETL_PV_NULL ? NULL : ": expected text";
		if (why) {
			retl_buf_adds(reason, "merge_fields.");
			retl_pfield_name(mf, reason);
			retl_buf_addc(reason, '.');
			retl_pfield_name(&f, reason);
			retl_buf_adds(reason, why);
			rc = -1;
			break;
		}
		retl_buf_reset(&part[k]);
		if (f.v.kind == RETL_PV_STRING)
			retl_pv_string(&f.v, &part[k]);
		else if (f.v.kind == RETL_PV_NUMBER)
			retl_buf_add(&part[k], f.v.raw, f.v.len);
		set |= part[k].len > 0;
	}
	if (rc == 0 && !set) {
		retl_buf_adds(o, "\"\"");
	} else if (rc == 0) {
		int n = 0;
		retl_buf_addc(o, '{');
		for (k = 0; addr_parts[k]; k++) {
			if (k >= ADDR_REQUIRED && !part[k].len)
				continue;
			retl_buf_addf(o, "%s\"%s\":", n++ ? "," : "", addr_parts[k]);
			retl_buf_add_json_str(o, part[k].ptr ? part[k].ptr : "", part[k].len);
		}
		retl_buf_addc(o, '}');
	}
	for (k = 0; k < 6; k++)
		retl_buf_free(&part[k]);
	return rc;
}

static int add_merge_fields(const struct retl_pv *v, retl_buf *o, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pfield f;
	int rc = 0, n = 0;
	retl_buf_addc(o, '{');
	if (retl_pv_open(&r, v) == 0 && v->kind == RETL_PV_OBJECT) {
		while ((rc = retl_payload_next(&r, &f)) > 0) {
			if (n++)
				retl_buf_addc(o, ',');
			retl_buf_addc(o, '"');
			retl_buf_add(o, f.name, f.name_len);
			retl_buf_adds(o, "\":");
			if (f.v.kind == RETL_PV_NULL)
				retl_buf_adds(o, "\"\"");
			else if (f.v.kind == RETL_PV_TRUE)
				retl_buf_adds(o, "\"true\"");
			else if (f.v.kind == RETL_PV_FALSE)
				retl_buf_adds(o, "\"false\"");
			else if (f.v.kind == RETL_PV_ARRAY) {
				retl_buf_adds(reason, "merge_fields.");
				retl_pfield_name(&f, reason);
				retl_buf_adds(reason, ": a list cannot be sent to a Mailchimp merge field");
				return -1;
			} else if (f.v.kind == RETL_PV_OBJECT) {
				if (add_address(&f, o, reason) < 0)
					return -1;
			} else {
				retl_buf_add(o, f.v.raw, f.v.len);
			}
		}
	}
	retl_buf_addc(o, '}');
	return rc;
}

/* one tag name (a JSON string as written) onto names, decoded */
static void take_name(const char *raw, size_t len, json_t *names)
{
	retl_buf n = RETL_BUF_INIT;
	if (names && retl_json_str_decode(raw, len, &n) == 0 && n.len)
		json_array_append_new(names, json_stringn(n.ptr, n.len));
	retl_buf_free(&n);
}

/* the row's tag names onto names */
static int add_tags(const struct retl_pv *v, json_t *names, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pv x;
	int rc;
	if (v->kind == RETL_PV_NULL || is_empty_str(v))
		return 0;
	if (v->kind == RETL_PV_STRING) {
		take_name(v->raw, v->len, names);
		return 0;
	}
	if (v->kind != RETL_PV_ARRAY) {
		retl_buf_adds(reason, "tags: expected a list of tag names (use \"split\" or type json), or one name");
		return -1;
	}
	retl_pv_open(&r, v);
	while ((rc = retl_payload_item(&r, &x)) > 0) {
		if (x.kind != RETL_PV_STRING) {
			retl_buf_adds(reason, "tags: every tag must be a string (a tag name)");
			return -1;
		}
		take_name(x.raw, x.len, names);
	}
	return rc;
}

/* one member of the payload other than email_address into o (with a
 * leading comma); -1 with a reason */
static int add_member(const struct retl_pfield *f, retl_buf *o, json_t *tags,
		      retl_buf *reason)
{
	const struct retl_pv *v = &f->v;
	int is_lang = retl_pfield_is(f, "language") || retl_pfield_is(f, "email_type");
	if (retl_pfield_is(f, "tags"))
		return add_tags(v, tags, reason);
	if (v->kind == RETL_PV_NULL && !retl_pfield_is(f, "merge_fields") &&
	    !retl_pfield_is(f, "vip"))
		return 0;
	retl_buf_adds(o, ",\"");
	retl_buf_add(o, f->name, f->name_len);
	retl_buf_adds(o, "\":");
	if (retl_pfield_is(f, "merge_fields"))
		return add_merge_fields(v, o, reason);
	if (retl_pfield_is(f, "vip")) {
		if (v->kind != RETL_PV_NULL && v->kind != RETL_PV_TRUE && v->kind != RETL_PV_FALSE) {
			retl_buf_adds(reason, "vip: expected a boolean");
			return -1;
		}
		retl_buf_adds(o, v->kind == RETL_PV_TRUE ? "true" : "false");
		return 0;
	}
	if (is_lang && v->kind != RETL_PV_STRING) {
		retl_pfield_name(f, reason);
		retl_buf_adds(reason, ": expected a string");
		return -1;
	}
	/* location {latitude, longitude}, interests {id: bool}, strings */
	retl_buf_add(o, v->raw, v->len);
	return 0;
}

int mailchimp_member(const char *payload, size_t len, retl_buf *body, retl_buf *email, json_t *tags, retl_buf *reason)
{
	struct retl_preader r;
	struct retl_pfield f;
	retl_buf rest = RETL_BUF_INIT, addr = RETL_BUF_INIT, bad = RETL_BUF_INIT;
	int rc, found = 0;

	if (retl_payload_open(&r, payload, len) < 0) {
		retl_buf_adds(reason, "mailchimp: payload is not a JSON object");
		return -1;
	}
	/* the address is checked first, wherever it stands */
	while ((rc = retl_payload_next(&r, &f)) > 0) {
		if (retl_pfield_is(&f, "email_address")) {
			retl_buf_reset(&addr);
			found = retl_pv_string(&f.v, &addr) == 0;
		} else if (!bad.len) {
			add_member(&f, &rest, tags, &bad);
		}
	}
	const char *e = addr.ptr;
	size_t el = found ? addr.len : 0;
	while (el && isspace((unsigned char)*e)) {
		e++;
		el--;
	}
	while (el && isspace((unsigned char)e[el - 1]))
		el--;
	if (rc < 0) {
		retl_buf_adds(reason, "mailchimp: payload is not a JSON object");
	} else if (!el) {
		retl_buf_adds(reason, "email_address: empty; Mailchimp finds members by their email address (match)");
		rc = -1;
	} else if (bad.len) {
		retl_buf_add(reason, bad.ptr, bad.len);
		rc = -1;
	}
	if (rc == 0) {
		retl_buf_adds(body, "{\"email_address\":");
		retl_buf_add_json_str(body, e, el);
		retl_buf_add(body, rest.ptr, rest.len);
		retl_buf_addc(body, '}');
		for (size_t i = 0; i < el; i++)
			retl_buf_addc(email, (char)tolower((unsigned char)e[i]));
	}
	retl_buf_free(&rest);
	retl_buf_free(&addr);
	retl_buf_free(&bad);
	return rc < 0 ? -1 : 0;
}
