/*-------------------------------------------------------------------------
 *
 * audit_record.c
 *	  The audit record (audit_internal.h): one fixed-size struct, so that it
 *	  can sit in a shared-queue slot as is.  Setting and reading its
 *	  fields, turning it into the column values of toms.audit_log, and
 *	  into one JSON line for the server log.
 *
 *	  The lowest of the audit files: it calls no other part of toms and
 *	  touches no shared state.  The columns and their order are those of
 *	  toms.audit_log (docs/audit.md, "What a record holds").
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "common/jsonapi.h"
#include "mb/pg_wchar.h"
#include "nodes/pg_list.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

#include "audit_internal.h"

void
toms_audit_rec_init(AuditRec *rec, AuditRecType type, TimestampTz ts)
{
	int			i;

	memset(&rec->h, 0, sizeof(rec->h));
	rec->h.type = type;
	rec->h.ts = ts;
	for (i = 0; i < RS_NSTR; i++)
		rec->h.len[i] = AUDIT_STR_NULL;
}

/* A string longer than the room left is cut at a character boundary. */
void
toms_audit_rec_set_str(AuditRec *rec, int field, const char *s)
{
	int			len;
	int			room = AUDIT_REC_DATA - rec->h.used;

	if (s == NULL)
	{
		rec->h.len[field] = AUDIT_STR_NULL;
		return;
	}
	len = strlen(s);
	if (len > room)
		len = pg_mbcliplen(s, len, room);
	memcpy(rec->data + rec->h.used, s, len);
	rec->h.off[field] = rec->h.used;
	rec->h.len[field] = len;
	rec->h.used += len;
}

void
toms_audit_rec_set_int(AuditRec *rec, int field, int64 v)
{
	rec->h.ints[field] = v;
	rec->h.intmask |= (1 << field);
}

char *
toms_audit_rec_get_str(const AuditRec *rec, int field)
{
	if (rec->h.len[field] == AUDIT_STR_NULL)
		return NULL;
	return pnstrdup(rec->data + rec->h.off[field], rec->h.len[field]);
}

/*
 * dst := src without string field skip (absent in dst), so that the field
 * can be set anew: a field once set keeps its bytes in data[].
 */
void
toms_audit_rec_copy_except(AuditRec *dst, const AuditRec *src, int skip)
{
	int			i;

	toms_audit_rec_init(dst, src->h.type, src->h.ts);
	for (i = 0; i < RS_NSTR; i++)
	{
		if (i == skip || src->h.len[i] == AUDIT_STR_NULL)
			continue;
		dst->h.off[i] = dst->h.used;
		dst->h.len[i] = src->h.len[i];
		memcpy(dst->data + dst->h.used, src->data + src->h.off[i], src->h.len[i]);
		dst->h.used += src->h.len[i];
	}
	memcpy(dst->h.ints, src->h.ints, sizeof(dst->h.ints));
	dst->h.intmask = src->h.intmask;
}

/* The column of each string and integer field (-1: not a column). */
static const int str_col[RS_NSTR] = {
	AC_KIND, AC_ACTION, AC_SESSION_ROLE, AC_EFFECTIVE_ROLE, AC_ACTOR,
	AC_TENANT, AC_JUSTIFICATION, AC_RELNAME, AC_CLIENT_ADDR,
	AC_APPLICATION_NAME, AC_FATE, AC_STATEMENT, AC_DETAIL, -1
};

static const int int_col[RI_NINT] = {
	AC_GRANT_ID, AC_ROW_COUNT, AC_QUERY_ID, AC_XID, AC_PID
};

void
toms_audit_rec_to_datums(const AuditRec *rec, Datum *values, bool *nulls, bool detail_jsonb)
{
	int			i;
	Size		size = 0;
	char	   *buf;

	for (i = 0; i < AC_NCOLS; i++)
	{
		values[i] = (Datum) 0;
		nulls[i] = true;
	}
	values[AC_TS] = TimestampTzGetDatum(rec->h.ts);
	nulls[AC_TS] = false;
	/* the text values, in one allocation */
	for (i = 0; i < RS_NSTR; i++)
		if (str_col[i] >= 0 && rec->h.len[i] != AUDIT_STR_NULL)
			size += MAXALIGN(VARHDRSZ + rec->h.len[i]);
	buf = palloc(size);
	for (i = 0; i < RS_NSTR; i++)
	{
		text	   *t = (text *) buf;

		if (str_col[i] < 0 || rec->h.len[i] == AUDIT_STR_NULL)
			continue;
		SET_VARSIZE(t, VARHDRSZ + rec->h.len[i]);
		memcpy(VARDATA(t), rec->data + rec->h.off[i], rec->h.len[i]);
		values[str_col[i]] = PointerGetDatum(t);
		nulls[str_col[i]] = false;
		buf += MAXALIGN(VARHDRSZ + rec->h.len[i]);
	}
	/*
	 * detail: one JSON object (jsonb since 0.2.0).  0.1.0's table (until
	 * ALTER EXTENSION UPDATE) gets the text as given, as 0.1.0 wrote it: the
	 * upgrade converts it like the rest.
	 */
	if (!nulls[AC_DETAIL] && detail_jsonb)
		values[AC_DETAIL] = DirectFunctionCall1(jsonb_in,
												CStringGetDatum(toms_audit_detail_object(text_to_cstring(DatumGetTextPP(values[AC_DETAIL])))));
	for (i = 0; i < RI_NINT; i++)
	{
		if (!(rec->h.intmask & (1 << i)))
			continue;
		if (int_col[i] == AC_PID)
			values[AC_PID] = Int32GetDatum((int32) rec->h.ints[i]);
		else
			values[int_col[i]] = Int64GetDatum(rec->h.ints[i]);
		nulls[int_col[i]] = false;
	}
}

/* JSON text of a record, for the server log. */
static char *
rec_json(const AuditRec *rec)
{
	static const char *const names[RS_NSTR] = {
		"kind", "action", "session_role", "effective_role", "actor", "tenant",
		"justification", "relname", "client_addr", "application_name", "fate",
		"statement", "detail", "database"
	};
	static const char *const inames[RI_NINT] = {
		"grant_id", "row_count", "query_id", "xid", "pid"
	};
	StringInfoData buf;
	int			i;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"ts\":");
	escape_json(&buf, timestamptz_to_str(rec->h.ts));
	for (i = 0; i < RS_NSTR; i++)
	{
		char	   *s = toms_audit_rec_get_str(rec, i);

		if (s == NULL)
			continue;
		appendStringInfo(&buf, ",\"%s\":", names[i]);
		if (i == RS_DETAIL)
			appendStringInfoString(&buf, toms_audit_detail_object(s));
		else
			escape_json(&buf, s);
		pfree(s);
	}
	for (i = 0; i < RI_NINT; i++)
		if (rec->h.intmask & (1 << i))
			appendStringInfo(&buf, ",\"%s\":" INT64_FORMAT, inames[i], rec->h.ints[i]);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/* The record as one JSON line in the server log. */
void
toms_audit_rec_to_log(const AuditRec *rec)
{
	toms_audit_log_json(rec_json(rec));
}

/* One JSON line in the server log, with a fixed prefix for a SIEM. */
void
toms_audit_log_json(const char *json)
{
	ereport(LOG,
			(errmsg("toms_audit: %s", json),
			 errhidestmt(true),
			 errhidecontext(true)));
}

/* ----------------------------------------------------------------
 * The detail column: one JSON object (docs/audit.md, "What a record holds")
 * ----------------------------------------------------------------
 */

static bool
json_valid(const char *s)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen((char *) s, strlen(s),
													   GetDatabaseEncoding(), true);

	return pg_parse_json(lex, &nullSemAction) == JSON_SUCCESS;
}

/*
 * "k1=v1 k2=v2 ..." as a JSON object of strings: a word "name=" starts a
 * pair, any other word continues the value before it (values keep their
 * spaces).  false if s is not of that form or repeats a key.
 */
static bool
key_values_to_json(const char *s, StringInfo out)
{
	List	   *keys = NIL;
	StringInfoData val;
	const char *p = s;
	bool		first = true;

	initStringInfo(&val);
	appendStringInfoChar(out, '{');
	for (;;)
	{
		const char *end = strchr(p, ' ');
		int			len = end ? end - p : strlen(p);
		int			k = 0;

		while (k < len && (isalpha((unsigned char) p[k]) || p[k] == '_' ||
						   (k > 0 && isdigit((unsigned char) p[k]))))
			k++;
		if (k > 0 && k < len && p[k] == '=')
		{
			ListCell   *lc;
			char	   *key = pnstrdup(p, k);

			foreach(lc, keys)
				if (strcmp(lfirst(lc), key) == 0)
					return false;
			keys = lappend(keys, key);
			if (!first)
			{
				escape_json(out, val.data);
				appendStringInfoString(out, ", ");
			}
			first = false;
			escape_json(out, key);
			appendStringInfoString(out, ": ");
			resetStringInfo(&val);
			appendBinaryStringInfo(&val, p + k + 1, len - k - 1);
		}
		else if (first)
			return false;
		else
		{
			appendStringInfoChar(&val, ' ');
			appendBinaryStringInfo(&val, p, len);
		}
		if (end == NULL)
			break;
		p = end + 1;
	}
	escape_json(out, val.data);
	appendStringInfoChar(out, '}');
	return true;
}

/*
 * A record's detail as the text of one JSON object: a JSON object as is;
 * key=value pairs (what SQL callers may pass) as an object of strings; any
 * other text (or a value cut at the record's size) as {"text": ...}.
 */
char *
toms_audit_detail_object(const char *s)
{
	StringInfoData buf;
	const char *p = s;

	while (isspace((unsigned char) *p))
		p++;
	if (*p == '{' && json_valid(s))
		return pstrdup(s);
	initStringInfo(&buf);
	if (key_values_to_json(s, &buf))
		return buf.data;
	resetStringInfo(&buf);
	appendStringInfoString(&buf, "{\"text\": ");
	escape_json(&buf, s);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * A detail written by toms 0.1.0 (text) as the jsonb the 0.2.0 upgrade
 * stores: the object it said (its JSON, or its key=value pairs), plus the
 * original text under AUDIT_DETAIL_0_1_0, which the hash chain covers as
 * it did when the record was written.  Never change this conversion:
 * verify_audit checks that a converted detail is exactly its result.
 */
Datum
toms_audit_detail_from_0_1_0(const char *s)
{
	StringInfoData buf;
	StringInfoData orig;
	const char *p = s;
	Datum		base;

	initStringInfo(&buf);
	while (isspace((unsigned char) *p))
		p++;
	if (*p == '{' && json_valid(s))
		appendStringInfoString(&buf, s);
	else if (!key_values_to_json(s, &buf))
	{
		resetStringInfo(&buf);
		appendStringInfoString(&buf, "{}");
	}
	base = DirectFunctionCall1(jsonb_in, CStringGetDatum(buf.data));
	initStringInfo(&orig);
	appendStringInfoString(&orig, "{\"" AUDIT_DETAIL_0_1_0 "\": ");
	escape_json(&orig, s);
	appendStringInfoChar(&orig, '}');
	return DirectFunctionCall2(jsonb_concat, base,
							   DirectFunctionCall1(jsonb_in, CStringGetDatum(orig.data)));
}

/*
 * The bytes of a jsonb detail the hash chain covers (*tag: the byte before
 * them): the 0.1.0 text of a converted record whose detail is exactly the
 * conversion of that text (tag 1, as 0.1.0 hashed it), else the jsonb's
 * text (tag 2).  An edit of either part of a converted detail falls to
 * tag 2, and no longer matches the hash.
 */
char *
toms_audit_detail_canonical(Datum d, uint8 *tag)
{
	Jsonb	   *jb = DatumGetJsonbP(d);
	char	   *out = DatumGetCString(DirectFunctionCall1(jsonb_out, PointerGetDatum(jb)));

	*tag = 2;
	if (JB_ROOT_IS_OBJECT(jb))
	{
		JsonbValue *v = getKeyJsonValueFromContainer(&jb->root, AUDIT_DETAIL_0_1_0,
													 strlen(AUDIT_DETAIL_0_1_0), NULL);

		if (v && v->type == jbvString)
		{
			char	   *orig = pnstrdup(v->val.string.val, v->val.string.len);
			char	   *conv = DatumGetCString(DirectFunctionCall1(jsonb_out,
																   toms_audit_detail_from_0_1_0(orig)));

			if (strcmp(conv, out) == 0)
			{
				*tag = 1;
				return orig;
			}
		}
	}
	return out;
}
