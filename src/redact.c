/*-------------------------------------------------------------------------
 *
 * redact.c
 *	  What toms keeps out of the server log, in one place (the one
 *	  emit_log_hook of toms, installed by hooks.c, calls toms_redact_log):
 *
 *	  - password literals: PostgreSQL prints the statement text
 *	    (log_statement, the STATEMENT line of an error); while a statement
 *	    that may set a role's password runs, the statement is hidden and
 *	    password literals are blanked in every field of the log line;
 *	  - bound parameters (toms.redact_log_parameters): an application that
 *	    seals with bound parameters (INSERT ... VALUES (toms.seal($1)))
 *	    keeps the plaintext out of the statement text, but PostgreSQL logs
 *	    the values of bound parameters with log_statement,
 *	    log_min_duration_statement and errors ("parameters: $1 = '...'").
 *
 *	  - tokens: a PASETO token is a bearer credential until it expires.  toms'
 *	    own refusals of a token hide the statement (context.c), but an error
 *	    PostgreSQL raises itself for a statement carrying a token ("permission
 *	    denied for function enter_tenant", a syntax error next to it) would
 *	    print it in the STATEMENT line; any statement holding "v4.public." is
 *	    hidden, and tokens in the other fields are cut after their header.
 *
 *	  toms_redact_secrets is also used for the audited statement text.
 *	  Depends on nothing else of toms.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <ctype.h>

#include "lib/stringinfo.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"

#include "toms.h"

static bool redact_log_parameters = true;

/*
 * Might the statement set a role's password?  CREATE/ALTER ROLE/USER/GROUP
 * somewhere in the string (it may hold several statements) and PASSWORD.
 */
static bool
sets_password(const char *q)
{
	const char *p;
	bool		role = false;
	bool		pw = false;

	for (p = q; *p && !(role && pw); p++)
	{
		if (!pw && pg_strncasecmp(p, "password", 8) == 0)
			pw = true;
		if (!role && (p == q || !isalnum((unsigned char) p[-1])))
		{
			const char *w = NULL;

			if (pg_strncasecmp(p, "create", 6) == 0)
				w = p + 6;
			else if (pg_strncasecmp(p, "alter", 5) == 0)
				w = p + 5;
			if (w && isspace((unsigned char) *w))
			{
				while (isspace((unsigned char) *w))
					w++;
				role = pg_strncasecmp(w, "role", 4) == 0 ||
					pg_strncasecmp(w, "user", 4) == 0 ||
					pg_strncasecmp(w, "group", 5) == 0;
			}
		}
	}
	return role && pw;
}

/*
 * End of the secret that starts at q, after a PASSWORD keyword (and, if
 * assigned, its '='), or NULL if none starts there: '...' or "..." with
 * doubled quotes, E'...' with backslash escapes, $tag$...$tag$, or -- in
 * connection strings (password=...) only -- a bare word (*quoted false).
 * An unterminated literal runs to the end.
 */
static const char *
secret_end(const char *q, bool assigned, bool *quoted)
{
	*quoted = true;
	if ((q[0] == 'E' || q[0] == 'e') && q[1] == '\'')
	{
		bool		esc = false;

		for (q += 2; *q; q++)
		{
			if (esc)
				esc = false;
			else if (*q == '\\')
				esc = true;
			else if (*q == '\'' && q[1] == '\'')
				q++;
			else if (*q == '\'')
				return q + 1;
		}
		return q;
	}
	if (*q == '\'' || *q == '"')
	{
		char		quote = *q;

		for (q++; *q; q++)
		{
			if (*q == quote && q[1] == quote)
				q++;
			else if (*q == quote)
				return q + 1;
		}
		return q;
	}
	if (*q == '$')
	{
		const char *t = q + 1;
		const char *end;

		while (*t && *t != '$' && (isalnum((unsigned char) *t) || *t == '_'))
			t++;
		if (*t != '$')
			return NULL;
		for (end = t + 1; *end; end++)
			if (strncmp(end, q, t - q + 1) == 0)
				return end + (t - q + 1);
		return end;
	}
	*quoted = false;
	if (assigned && *q && pg_strncasecmp(q, "null", 4) != 0)
	{
		const char *w = q;

		while (*w && !isspace((unsigned char) *w) && *w != ';' && *w != ',' &&
			   *w != '\'' && *w != ')')
			w++;
		return w > q ? w : NULL;
	}
	return NULL;
}

/*
 * Copy s with the secrets toms knows how to spot replaced: the literal
 * after every PASSWORD keyword (CREATE/ALTER ROLE) by '********', the value
 * of password=... in connection strings and the password of user:password@
 * in URIs by ***.  Used for the server log and for audited statement text.
 */
char *
toms_redact_secrets(const char *s)
{
	StringInfoData out;
	const char *p = s;

	initStringInfo(&out);
	while (*p)
	{
		if (pg_strncasecmp(p, "password", 8) == 0)
		{
			const char *q = p + 8;
			const char *end;
			bool		assigned = false;
			bool		quoted;

			while (isspace((unsigned char) *q))
				q++;
			if (*q == '=')
			{
				assigned = true;
				for (q++; *q == ' ' || *q == '\t'; q++)
					;
			}
			end = secret_end(q, assigned, &quoted);
			if (end)
			{
				appendBinaryStringInfo(&out, p, q - p);
				appendStringInfoString(&out, quoted ? "'********'" : "***");
				p = end;
				continue;
			}
			appendBinaryStringInfo(&out, p, 8);
			p += 8;
			continue;
		}
		if (p[0] == ':' && p[1] == '/' && p[2] == '/')
		{
			const char *q = p + 3;
			const char *colon = NULL;
			const char *at = NULL;

			while (*q && *q != '/' && *q != ' ' && *q != '\'' && *q != '"')
			{
				if (*q == ':' && colon == NULL)
					colon = q;
				if (*q == '@')
					at = q;
				q++;
			}
			if (colon && at && colon < at)
			{
				appendBinaryStringInfo(&out, p, colon - p + 1);
				appendStringInfoString(&out, "***");
				p = at;
				continue;
			}
		}
		appendStringInfoChar(&out, *p++);
	}
	return out.data;
}

static void
redact_field(char **field)
{
	if (*field && (strstr(*field, "assword") || strstr(*field, "ASSWORD")))
		*field = toms_redact_secrets(*field);
}

/*
 * Cut every "v4.public.<payload>[.<footer>]" in *field after its header.
 */
static void
redact_tokens(char **field)
{
	StringInfoData out;
	const char *p;

	if (*field == NULL || strstr(*field, "v4.public.") == NULL)
		return;
	initStringInfo(&out);
	for (p = *field; *p;)
	{
		if (strncmp(p, "v4.public.", 10) == 0)
		{
			appendStringInfoString(&out, "v4.public.<hidden>");
			p += 10;
			while (isalnum((unsigned char) *p) || *p == '-' || *p == '_' || *p == '.')
				p++;
			continue;
		}
		appendStringInfoChar(&out, *p++);
	}
	*field = out.data;
}

/* emit_log_hook (hooks.c): before the other libraries' hooks see the line. */
void
toms_redact_log(ErrorData *edata)
{
	if (debug_query_string && sets_password(debug_query_string))
	{
		edata->hide_stmt = true;
		redact_field(&edata->message);
		redact_field(&edata->detail);
		redact_field(&edata->detail_log);
		redact_field(&edata->context);
		redact_field(&edata->internalquery);
	}
	if (debug_query_string && strstr(debug_query_string, "v4.public.") != NULL)
	{
		edata->hide_stmt = true;
		redact_tokens(&edata->message);
		redact_tokens(&edata->detail);
		redact_tokens(&edata->detail_log);
		redact_tokens(&edata->context);
		redact_tokens(&edata->internalquery);
	}
	if (redact_log_parameters && edata->output_to_server)
	{
		if (edata->detail && strncmp(edata->detail, "parameters: ", 12) == 0)
			edata->detail = pstrdup("parameters: (hidden by toms.redact_log_parameters)");
		if (edata->detail_log && strncmp(edata->detail_log, "parameters: ", 12) == 0)
			edata->detail_log = pstrdup("parameters: (hidden by toms.redact_log_parameters)");
		if (edata->context && strstr(edata->context, "with parameters: ") != NULL)
			edata->context = pstrdup("parameters hidden by toms.redact_log_parameters");
	}
}

void
toms_redact_init(void)
{
	DefineCustomBoolVariable("toms.redact_log_parameters",
							 gettext_noop("Hides the values of bound parameters in the server log."),
							 NULL, &redact_log_parameters, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);
}
