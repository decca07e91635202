"""Mailchimp segments (static segments, a.k.a. tags) for the Mailchimp emulator
(mailchimp.py routes /3.0/lists/{list_id}/segments... here, under its lock, after
its auth, connection limit, faults and request-schema check).

Served:
  POST /lists/{list_id}/segments                 {name, static_segment?: [emails]} ->
                                                 the segment (type "static"; with
                                                 "options" instead: "saved")
  GET  /lists/{list_id}/segments/{segment_id}    the segment {id, name, member_count,
                                                 type, list_id, created_at, updated_at}
  POST /lists/{list_id}/segments/{segment_id}    {members_to_add, members_to_remove}
       -> {members_added: [member], members_removed: [member], errors: [{email_addresses,
           error}], total_added, total_removed, error_count}
  GET  /lists/{list_id}/segments/{segment_id}/members   {members: [...], total_items}
Control (no auth): mailchimp.py's /_emulator/segments/{list_id} (POST {name, type})
and /_emulator/segments/{list_id}/{segment_id} (GET: {"members": [addresses]}).

From Mailchimp's documents:
  * The spec (marketing 3.0.85): the batch body's members_to_add / members_to_remove are
    arrays of addresses, "A maximum of 500 members can be sent"; "Any emails provided
    that are not present on the list will be ignored"; the answer's errors are "objects,
    each representing an array of email addresses that could not be added to the segment
    or removed and an error message"; a segment's type is saved, static or fuzzy ("Static
    segments are now known as tags").
  * Over 500: 400 "Invalid Resource", detail "Maximum allowed member items exceeded,
    please provide at most 500 items in members_to_add field or members_to_remove field"
    (a real answer quoted in hitobito/hitobito_sac_cas#1487).
  * Batch members on a segment that is not static: "A Static Segment with an id of N does
    not exist for this list" (a real message quoted in brandonseydel/MailChimp.Net#377,
    for a saved segment).
Not verified (chosen): that message's status and title (404 "Resource Not Found"); the
text of errors[].error for an address not in the audience ("Email address is not a member
of the audience" -- the spec says such addresses are "ignored" and also that errors carry
addresses that could not be added); archived members count as not in the audience.
"""

import time

from common import Response, iso_ms

MAX_ITEMS = 500
NOT_IN_AUDIENCE = "Email address is not a member of the audience"


def segments_of(lst):
    return lst.setdefault("segments", {})


def create(emu, lst, name, type_="static", emails=()):
    segs = segments_of(lst)
    sid = 40000 + len(segs) + 1
    now = iso_ms(time.time())
    segs[sid] = {"id": sid, "name": name, "type": type_, "list_id": lst["id"],
                 "created_at": now, "updated_at": now, "members": {}}
    for e in emails:
        m = live_member(emu, lst, e)
        if m is not None:
            segs[sid]["members"][m["id"]] = m
    return segs[sid]


def public(seg):
    d = {k: v for k, v in seg.items() if k != "members"}
    d["member_count"] = len(seg["members"])
    if seg["type"] == "static":
        d["options"] = {"match": "any", "conditions": []}
    return d


def live_member(emu, lst, email):
    import mailchimp
    m = lst["members"].get(mailchimp.subscriber_hash(email.strip()))
    return m if m is not None and m["status"] != "archived" else None


def route(emu, req, lst, parts):
    """parts after /lists/{list_id}: ["segments", ...]; the lock is held"""
    import mailchimp
    m = req.method
    if parts == ["segments"] and m == "POST":
        body = req.json()
        if "options" in body:
            seg = create(emu, lst, body["name"], "saved")
        else:
            seg = create(emu, lst, body["name"], "static", body.get("static_segment") or [])
        return Response(200, public(seg))
    if len(parts) < 2:
        return mailchimp.not_found()
    try:
        seg = segments_of(lst).get(int(parts[1]))
    except ValueError:
        seg = None
    if seg is None:
        return mailchimp.not_found()
    if len(parts) == 2 and m == "GET":
        return Response(200, public(seg))
    if len(parts) == 3 and parts[2] == "members" and m == "GET":
        ms = list(seg["members"].values())
        return Response(200, {"members": ms, "total_items": len(ms), "list_id": lst["id"]})
    if len(parts) != 2 or m != "POST":
        return mailchimp.not_found()
    if seg["type"] != "static":
        return mailchimp.problem(404, "Resource Not Found",
                                 "A Static Segment with an id of %d does not exist for this list"
                                 % seg["id"])
    body = req.json()
    add, rem = body.get("members_to_add") or [], body.get("members_to_remove") or []
    req.info["inputs"] = len(add) + len(rem)
    if len(add) > MAX_ITEMS or len(rem) > MAX_ITEMS:
        return mailchimp.problem(400, "Invalid Resource",
                                 "Maximum allowed member items exceeded, please provide at most "
                                 "500 items in members_to_add field or members_to_remove field")
    added, removed, missing = [], [], []
    for e in add:
        mem = live_member(emu, lst, e)
        if mem is None:
            missing.append(e)
        elif mem["id"] not in seg["members"]:
            seg["members"][mem["id"]] = mem
            added.append(mem)
    for e in rem:
        mem = live_member(emu, lst, e)
        if mem is None:
            missing.append(e)
        elif seg["members"].pop(mem["id"], None) is not None:
            removed.append(mem)
    if added or removed:
        seg["updated_at"] = iso_ms(time.time())
    errors = [{"email_addresses": missing, "error": NOT_IN_AUDIENCE}] if missing else []
    return Response(200, {"members_added": added, "members_removed": removed, "errors": errors,
                          "total_added": len(added), "total_removed": len(removed),
                          "error_count": len(missing)})


def control(emu, req, p):
    """/_emulator/segments/...; p after _emulator; the lock is held"""
    import mailchimp
    lst = emu.lists.get(p[1]) if len(p) >= 2 else None
    if lst is None:
        return Response(404, {"error": "no list"})
    if len(p) == 2 and req.method == "POST":
        b = req.json() or {}
        return Response(200, public(create(emu, lst, b.get("name", "seg"), b.get("type", "static"))))
    if len(p) == 3 and req.method == "GET":
        seg = segments_of(lst).get(int(p[2]))
        if seg is None:
            return mailchimp.not_found()
        return Response(200, {"members": sorted(x["email_address"].lower()
                                                for x in seg["members"].values())})
    return None
