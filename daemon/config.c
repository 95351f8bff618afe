// SPDX-License-Identifier: MIT
/*
 * Loading and validating echod.conf. The key table below is the single list of
 * keys: parsing, defaults in messages, `echod --help-config` and the test that
 * checks echod.conf(5) all read it.
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libconfig.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "build-config.h"
#include "log.h"
#include "macro.h"

#define OFF(field) offsetof(struct echod_config, field)

static int convert_mode(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	if (strcmp(v, "echo") == 0)
		c->mode = MODE_ECHO;
	else if (strcmp(v, "line") == 0)
		c->mode = MODE_LINE;
	else {
		snprintf(err, errlen, "\"%s\" is not a mode (\"echo\" or \"line\")", v);
		return -EINVAL;
	}
	return 0;
}

static int convert_log_level(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	int l = log_level_from_string(v);
	if (l < 0) {
		snprintf(err, errlen, "\"%s\" is not a log level (%s)", v, log_level_names());
		return -EINVAL;
	}
	c->log_level = l;
	return 0;
}

static int set_string(char **field, const char *v)
{
	char *copy = strdup(v);
	if (!copy)
		return -ENOMEM;
	free(*field);
	*field = copy;
	return 0;
}

static int convert_host(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	if (*v == '\0' || strpbrk(v, " \t\r\n")) {
		snprintf(err, errlen, "\"%s\" is not a host name or address", v);
		return -EINVAL;
	}
	return set_string(&c->host, v);
}

static int convert_prefix(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	return set_string(&c->line_prefix, v);
}

static int convert_control_socket(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	if (*v != '\0' && *v != '/') {
		snprintf(err, errlen, "\"%s\" is not an absolute path (or \"\" for none)", v);
		return -EINVAL;
	}
	/* sun_path holds 108 bytes including the terminating NUL. */
	if (strlen(v) > 107) {
		snprintf(err, errlen, "path is %zu bytes, longer than a Unix socket allows (107)",
			 strlen(v));
		return -EINVAL;
	}
	c->control_socket_explicit = true;
	return set_string(&c->control_socket, v);
}

static int convert_mode_bits(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	char *end;
	errno = 0;
	long m = strtol(v, &end, 8);
	if (errno || end == v || *end != '\0' || m < 0 || m > 0777) {
		snprintf(err, errlen, "\"%s\" is not an octal file mode (e.g. \"0660\")", v);
		return -EINVAL;
	}
	c->control_socket_mode = (int) m;
	return 0;
}

/* Group names are checked when the config is loaded, so echod -t reports a typo. */
static int convert_group(char **field, const char *v, char *err, size_t errlen)
{
	if (*v != '\0' && !getgrnam(v)) {
		snprintf(err, errlen, "no group named \"%s\"", v);
		return -EINVAL;
	}
	return set_string(field, v);
}

static int convert_socket_group(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	return convert_group(&c->control_socket_group, v, err, errlen);
}

static int convert_admin_group(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	return convert_group(&c->control_admin_group, v, err, errlen);
}

/* A bool given as text (the command line): the spellings libconfig accepts. */
static int convert_preserve(struct echod_config *c, const char *v, char *err, size_t errlen)
{
	if (strcasecmp(v, "true") == 0 || strcmp(v, "1") == 0) {
		c->preserve_connections = true;
	} else if (strcasecmp(v, "false") == 0 || strcmp(v, "0") == 0) {
		c->preserve_connections = false;
	} else {
		snprintf(err, errlen, "\"%s\" is not a boolean (true or false)", v);
		return -EINVAL;
	}
	return 0;
}

const struct config_key config_keys[] = {
    {"host", KEY_STRING, 1, 255, "IPv4/IPv6 literal or host name", OFF(host), convert_host},
    {"port", KEY_INT, 1, 65535, "1-65535", OFF(port), NULL},
    {"threads", KEY_INT, 0, 1024, "0-1024, 0 = one per online CPU", OFF(threads), NULL},
    {"mode", KEY_STRING, 1, 16, "\"echo\" or \"line\"", OFF(mode), convert_mode},
    {"line_prefix", KEY_STRING, 0, 1024, "at most 1024 bytes", OFF(line_prefix), convert_prefix},
    {"max_line", KEY_INT, 16, 16777216, "16-16777216", OFF(max_line), NULL},
    {"max_connections", KEY_INT, 1, 1000000, "1-1000000", OFF(max_connections), NULL},
    {"idle_timeout", KEY_INT, 0, 86400, "0-86400, 0 = never", OFF(idle_timeout), NULL},
    {"shutdown_timeout", KEY_INT, 0, 3600, "0-3600", OFF(shutdown_timeout), NULL},
    {"control_socket", KEY_STRING, 0, 107, "absolute path, or \"\" for none", OFF(control_socket),
     convert_control_socket},
    {"control_socket_mode", KEY_STRING, 1, 4, "octal permission bits, e.g. \"0660\"",
     OFF(control_socket_mode), convert_mode_bits},
    {"control_socket_group", KEY_STRING, 0, 64, "a group name, or \"\" to leave it",
     OFF(control_socket_group), convert_socket_group},
    {"control_admin_group", KEY_STRING, 0, 64, "a group name, or \"\" for none",
     OFF(control_admin_group), convert_admin_group},
    {"log_level", KEY_STRING, 1, 16, "error, warning, notice, info, debug", OFF(log_level),
     convert_log_level},
    {"preserve_connections", KEY_BOOL, 0, 1, "true or false", OFF(preserve_connections),
     convert_preserve},
};
const size_t config_keys_count = ARRAY_SIZE(config_keys);

void config_init_defaults(struct echod_config *c)
{
	*c = (struct echod_config){
	    .host = strdup("127.0.0.1"),
	    .port = 7007,
	    .threads = 0,
	    .mode = MODE_ECHO,
	    .line_prefix = strdup("Received: "),
	    .max_line = 65536,
	    .max_connections = 10000,
	    .idle_timeout = 300,
	    .shutdown_timeout = 10,
	    .control_socket = strdup(ECHOD_CONTROL_SOCKET),
	    .control_socket_mode = 0660,
	    .control_socket_group = strdup(""),
	    .control_admin_group = strdup(""),
	    .log_level = LOG_LEVEL_INFO,
	    .preserve_connections = true,
	};
	if (!c->host || !c->line_prefix || !c->control_socket || !c->control_socket_group ||
	    !c->control_admin_group) {

		/* Out of memory at start-up: nothing sensible can follow. */
		fputs("echod: out of memory\n", stderr);
		abort();
	}
}

void config_done(struct echod_config *c)
{
	free(c->host);
	free(c->line_prefix);
	free(c->control_socket);
	free(c->control_socket_group);
	free(c->control_admin_group);
	*c = (struct echod_config){0};
}

int config_copy(struct echod_config *dst, const struct echod_config *src)
{
	*dst = *src;
	dst->host = strdup(src->host);
	dst->line_prefix = strdup(src->line_prefix);
	dst->control_socket = strdup(src->control_socket);
	dst->control_socket_group = strdup(src->control_socket_group);
	dst->control_admin_group = strdup(src->control_admin_group);
	if (!dst->host || !dst->line_prefix || !dst->control_socket || !dst->control_socket_group ||
	    !dst->control_admin_group) {
		config_done(dst);
		return -ENOMEM;
	}
	return 0;
}

const struct config_key *config_key_find(const char *name)
{
	for (size_t i = 0; i < config_keys_count; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return &config_keys[i];
	return NULL;
}

int config_worker_count(const struct echod_config *c)
{
	if (c->threads > 0)
		return c->threads;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 1 ? 1 : (int) MIN(n, 1024);
}

const char *config_mode_name(enum echo_mode m)
{
	return m == MODE_LINE ? "line" : "echo";
}

/*
 * Messages quote values from the file, and a libconfig string may hold a line
 * break: escape CR and LF as \r and \n (as they would be written in the
 * file) and other control bytes as '?', so each message stays one line in the
 * log and in `echoctl reload`. Tabs are kept. Takes over line.
 */
static char *one_line(char *line)
{
	size_t len = strlen(line), breaks = 0;
	for (const char *p = line; *p; p++)
		breaks += *p == '\n' || *p == '\r';
	char *out = breaks ? malloc(len + breaks + 1) : NULL;
	char *q = out ? out : line;

	for (const char *p = line; *p; p++) {
		unsigned char ch = (unsigned char) *p;
		if (out && (ch == '\n' || ch == '\r')) {
			*q++ = '\\';
			*q++ = ch == '\n' ? 'n' : 'r';
		} else if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
			*q++ = '?';
		} else {
			*q++ = (char) ch;
		}
	}
	*q = '\0';
	if (out)
		free(line);
	return out ? out : line;
}

void config_error_add(struct config_errors *e, const char *fmt, ...)
{
	va_list ap;
	char *line = NULL;

	if (e->count >= ARRAY_SIZE(e->lines)) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	int r = vasprintf(&line, fmt, ap);
	va_end(ap);
	if (r < 0) {
		e->dropped++;
		return;
	}
	e->lines[e->count++] = one_line(line);
}

void config_errors_done(struct config_errors *e)
{
	for (size_t i = 0; i < e->count; i++)
		free(e->lines[i]);
	*e = (struct config_errors){0};
}

void config_errors_log(const struct config_errors *e)
{
	for (size_t i = 0; i < e->count; i++)
		log_error("%s", e->lines[i]);
	if (e->dropped)
		log_error("... and %zu more errors", e->dropped);
}

/* Levenshtein distance, small inputs only: for "did you mean" on unknown keys. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t row[64];

	if (la >= ARRAY_SIZE(row) || lb >= ARRAY_SIZE(row))
		return SIZE_MAX;
	for (size_t j = 0; j <= lb; j++)
		row[j] = j;
	for (size_t i = 1; i <= la; i++) {
		size_t diag = row[0];
		row[0] = i;
		for (size_t j = 1; j <= lb; j++) {
			size_t up = row[j];
			size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
			row[j] = MIN(MIN(row[j] + 1, row[j - 1] + 1), diag + cost);
			diag = up;
		}
	}
	return row[lb];
}

static const char *closest_key(const char *name)
{
	const char *best = NULL;
	size_t best_d = 3; /* suggest only close misspellings */

	for (size_t i = 0; i < config_keys_count; i++) {
		size_t d = edit_distance(name, config_keys[i].name);
		if (d < best_d) {
			best_d = d;
			best = config_keys[i].name;
		}
	}
	return best;
}

static const char *type_name(int type)
{
	switch (type) {
	case CONFIG_TYPE_INT:
	case CONFIG_TYPE_INT64:
		return "an integer";
	case CONFIG_TYPE_FLOAT:
		return "a float";
	case CONFIG_TYPE_STRING:
		return "a string";
	case CONFIG_TYPE_BOOL:
		return "a boolean";
	case CONFIG_TYPE_GROUP:
		return "a group";
	case CONFIG_TYPE_ARRAY:
		return "an array";
	case CONFIG_TYPE_LIST:
		return "a list";
	default:
		return "an unknown type";
	}
}

static int check_int(const struct config_key *k, long long v, char *err, size_t errlen)
{
	if (v < k->min || v > k->max) {
		snprintf(err, errlen, "%lld is out of range (%s)", v, k->allowed);
		return -EINVAL;
	}
	return 0;
}

static int check_string(const struct config_key *k, const char *v, char *err, size_t errlen)
{
	size_t len = strlen(v);
	if ((long long) len < k->min || (long long) len > k->max) {
		if (len == 0)
			snprintf(err, errlen, "must not be empty (%s)", k->allowed);
		else
			snprintf(err, errlen, "is %zu bytes long (%s)", len, k->allowed);
		return -EINVAL;
	}
	return 0;
}

static int apply_string(struct echod_config *c, const struct config_key *k, const char *v,
			char *err, size_t errlen)
{
	int r = check_string(k, v, err, errlen);
	if (r < 0)
		return r;
	r = k->convert(c, v, err, errlen);
	if (r == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	return r;
}

static bool is_name_char(char ch)
{
	return isalnum((unsigned char) ch) || ch == '_' || ch == '-' || ch == '*';
}

/* Skips blanks and comments (#, // and C-style), as libconfig's scanner does. */
static const char *skip_blank(const char *p)
{
	for (;;) {
		p += strspn(p, " \t\r\n\f\v");
		if (*p == '#' || (p[0] == '/' && p[1] == '/')) {
			p += strcspn(p, "\n");
		} else if (p[0] == '/' && p[1] == '*') {
			const char *end = strstr(p + 2, "*/");
			p = end ? end + 2 : p + strlen(p);
		} else {
			return p;
		}
	}
}

/*
 * Finds the integer literal written for the top-level setting `name` and
 * returns it with its length (sign and digits, without an "L" suffix); NULL
 * when not found. Strings, comments and nested groups, arrays and lists are
 * skipped, so that neither a comment between "=" and the number nor a
 * commented-out "port = 1;" before the real one hides what libconfig read.
 */
static const char *int_literal(const char *text, const char *name, size_t *ret_len)
{
	size_t nlen = strlen(name);
	int depth = 0;

	for (const char *p = skip_blank(text); *p; p = skip_blank(p)) {
		if (*p == '"') {
			for (p++; *p && *p != '"'; p++)
				if (*p == '\\' && p[1])
					p++;
			if (*p)
				p++;
			continue;
		}
		if (strchr("{[(", *p) || strchr("}])", *p)) {
			depth += strchr("{[(", *p) ? 1 : -1;
			p++;
			continue;
		}
		if (!is_name_char(*p)) {
			p++;
			continue;
		}
		const char *word = p;
		while (is_name_char(*p))
			p++;
		if (depth != 0 || (size_t) (p - word) != nlen || strncmp(word, name, nlen) != 0)
			continue;
		const char *q = skip_blank(p);
		if (*q != '=' && *q != ':')
			continue;
		q = skip_blank(q + 1);
		size_t n = *q == '+' || *q == '-';
		if (q[n] == '0' && (q[n + 1] == 'x' || q[n + 1] == 'X'))
			n += 2 + strspn(q + n + 2, "0123456789abcdefABCDEF");
		else
			n += strspn(q + n, "0123456789");
		*ret_len = n;
		return q;
	}
	return NULL;
}

/*
 * libconfig 1.5 silently wraps an integer literal that does not fit in 32 bits
 * ("port = 4294967297;" reads as 1, "threads = 4294967296;" as 0). Every int
 * key's range lies within int, so a literal outside int is out of range as
 * written: report it rather than use the wrapped value.
 */
static int check_int_literal(const struct config_key *k, const char *text, char *err, size_t errlen)
{
	size_t n;
	const char *lit = int_literal(text, k->name, &n);
	if (!lit)
		return 0;
	const char *digits = lit + (*lit == '+' || *lit == '-');
	bool hex = digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
	char *end;
	errno = 0;
	long long v = strtoll(lit, &end, hex ? 16 : 10);
	if (end != lit + n || (errno != ERANGE && v >= INT_MIN && v <= INT_MAX))
		return 0;
	snprintf(err, errlen, "%.*s is out of range (%s)", (int) MIN(n, 64), lit, k->allowed);
	return -EINVAL;
}

static int apply_setting(struct echod_config *c, const struct config_key *k,
			 const config_setting_t *s, const char *text, char *err, size_t errlen)
{
	int type = config_setting_type(s);

	if (k->type == KEY_INT) {
		if (type != CONFIG_TYPE_INT && type != CONFIG_TYPE_INT64) {
			snprintf(err, errlen, "expected an integer (%s), got %s", k->allowed,
				 type_name(type));
			return -EINVAL;
		}
		if (check_int_literal(k, text, err, errlen) < 0)
			return -EINVAL;
		long long v = config_setting_get_int64(s);
		if (check_int(k, v, err, errlen) < 0)
			return -EINVAL;
		*(int *) ((char *) c + k->offset) = (int) v;
		return 0;
	}
	if (k->type == KEY_BOOL) {
		if (type != CONFIG_TYPE_BOOL) {
			snprintf(err, errlen, "expected a boolean (%s), got %s", k->allowed,
				 type_name(type));
			return -EINVAL;
		}
		*(bool *) ((char *) c + k->offset) = config_setting_get_bool(s) != 0;
		return 0;
	}
	if (type != CONFIG_TYPE_STRING) {
		snprintf(err, errlen, "expected a string (%s), got %s", k->allowed,
			 type_name(type));
		return -EINVAL;
	}
	return apply_string(c, k, config_setting_get_string(s), err, errlen);
}

static void check_unknown(const char *file, int line, const char *name, struct config_errors *e)
{
	const char *hint = closest_key(name);
	if (hint)
		config_error_add(e, "%s:%d: %s: unknown key (did you mean \"%s\"?)", file, line,
				 name, hint);
	else
		config_error_add(e, "%s:%d: %s: unknown key", file, line, name);
}

static int apply_parsed(struct echod_config *c, config_t *lc, const char *text, const char *file,
			struct config_errors *errs)
{
	config_setting_t *root = config_root_setting(lc);
	int n = config_setting_length(root);
	size_t before = errs->count + errs->dropped;

	for (int i = 0; i < n; i++) {
		const config_setting_t *s = config_setting_get_elem(root, (unsigned) i);
		const char *name = config_setting_name(s);
		int line = config_setting_source_line(s);
		const struct config_key *k = config_key_find(name);
		char err[512];

		if (!k) {
			check_unknown(file, line, name, errs);
			continue;
		}
		if (apply_setting(c, k, s, text, err, sizeof(err)) < 0)
			config_error_add(errs, "%s:%d: %s: %s", file, line, name, err);
	}
	return errs->count + errs->dropped > before ? -EINVAL : 0;
}

static int report_parse_error(config_t *lc, const char *name, struct config_errors *errs)
{
	const char *text = config_error_text(lc);
	if (config_error_type(lc) == CONFIG_ERR_FILE_IO) {
		config_error_add(errs, "%s: cannot read: %s", name, strerror(errno));
		return -EINVAL;
	}
	config_error_add(errs, "%s:%d: %s", name, config_error_line(lc),
			 text ? text : "syntax error");
	return -EINVAL;
}

/*
 * libconfig would open any file an @include names, outside the checks we
 * apply to the main file; echod's config is one file, so refuse it.
 */
static int reject_include(const char *text, const char *name, struct config_errors *errs)
{
	int line = 1;
	bool at_line_start = true; /* libconfig only honours @include first on a line */

	for (const char *p = text; *p; p++) {
		if (*p == '\n') {
			line++;
			at_line_start = true;
		} else if (at_line_start && *p == '@' && strncmp(p, "@include", 8) == 0) {
			config_error_add(
			    errs, "%s:%d: @include is not supported (keep the config in one file)",
			    name, line);
			return -EINVAL;
		} else if (*p != ' ' && *p != '\t') {
			at_line_start = false;
		}
	}
	return 0;
}

int config_load_string(struct echod_config *c, const char *text, const char *name,
		       struct config_errors *errs)
{
	config_t lc;
	int r;

	if (reject_include(text, name, errs) < 0)
		return -EINVAL;
	config_init(&lc);
	if (config_read_string(&lc, text) != CONFIG_TRUE)
		r = report_parse_error(&lc, name, errs);
	else
		r = apply_parsed(c, &lc, text, name, errs);
	config_destroy(&lc);
	return r;
}

/*
 * Opens path for reading only if it is a regular file. O_NONBLOCK keeps a FIFO
 * put in its place from blocking the main thread (signals, control socket and
 * watchdog with it) until a writer appears. Sets errno = ENOENT, with nothing
 * reported, when the file does not exist.
 */
static FILE *open_regular_file(const char *path, struct config_errors *errs)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		if (errno != ENOENT)
			config_error_add(errs, "%s: cannot open: %s", path, strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) < 0) {
		config_error_add(errs, "%s: cannot read: %s", path, strerror(errno));
		safe_close(fd);
		errno = EINVAL;
		return NULL;
	}
	if (!S_ISREG(st.st_mode)) {
		if (S_ISDIR(st.st_mode))
			config_error_add(errs, "%s: cannot read: %s", path, strerror(EISDIR));
		else
			config_error_add(errs, "%s: cannot read: not a regular file", path);

		safe_close(fd);
		errno = EINVAL;
		return NULL;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		config_error_add(errs, "%s: cannot read: %s", path, strerror(errno));
		safe_close(fd);
	}
	return f;
}

/*
 * Reads the file ourselves rather than with config_read_file(): that way a
 * missing file, a directory and a permission problem each get their own
 * message.
 */
static int read_whole_file(const char *path, char **ret, struct config_errors *errs)
{
	_cleanup_free_ char *data = NULL;
	size_t len = 0, cap = 0;
	FILE *f = open_regular_file(path, errs);

	if (!f)
		return errno == ENOENT ? -ENOENT : -EINVAL;

	for (;;) {
		/* Checked on what was read: the buffer may grow to twice the limit. */
		if (len > 16 * 1024 * 1024) {
			config_error_add(errs, "%s: larger than 16 MiB, not a config file", path);
			fclose(f);
			return -EINVAL;
		}
		if (cap - len < 4096) {
			char *p = realloc(data, cap ? cap * 2 : 8192);
			if (!p) {
				fclose(f);
				return -ENOMEM;
			}
			data = p;
			cap = cap ? cap * 2 : 8192;
		}
		size_t n = fread(data + len, 1, cap - len - 1, f);
		len += n;
		if (n == 0)
			break;
	}
	bool failed = ferror(f);
	int saved = errno;
	fclose(f);
	if (failed) {
		config_error_add(errs, "%s: cannot read: %s", path, strerror(saved));
		return -EINVAL;
	}
	if (memchr(data, '\0', len)) {
		config_error_add(errs, "%s: contains a NUL byte, not a config file", path);
		return -EINVAL;
	}
	data[len] = '\0';
	*ret = data;
	data = NULL;
	return 0;
}

int config_load_file(struct echod_config *c, const char *path, struct config_errors *errs)
{
	_cleanup_free_ char *text = NULL;
	int r = read_whole_file(path, &text, errs);
	if (r < 0)
		return r;
	return config_load_string(c, text, path, errs);
}

int config_set_from_string(struct echod_config *c, const char *key, const char *value, char *err,
			   size_t errlen)
{
	const struct config_key *k = config_key_find(key);
	if (!k) {
		snprintf(err, errlen, "unknown key");
		return -EINVAL;
	}
	if (k->type == KEY_STRING)
		return apply_string(c, k, value, err, errlen);
	if (k->type == KEY_BOOL)
		return k->convert(c, value, err, errlen);

	char *end;
	errno = 0;
	long long v = strtoll(value, &end, 10);
	if (errno || end == value || *end != '\0') {
		snprintf(err, errlen, "\"%s\" is not an integer (%s)", value, k->allowed);
		return -EINVAL;
	}
	if (check_int(k, v, err, errlen) < 0)
		return -EINVAL;
	*(int *) ((char *) c + k->offset) = (int) v;
	return 0;
}
