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

#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/json.h"
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
toms_audit_rec_to_datums(const AuditRec *rec, Datum *values, bool *nulls)
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
