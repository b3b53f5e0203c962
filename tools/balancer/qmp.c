// SPDX-License-Identifier: GPL-2.0
/*
 * dmm-balancer: a small QMP client over a unix socket.
 *
 * Every call has a deadline: a QEMU that hangs costs the caller at most
 * that long, and a peer that sends something that is not JSON, or JSON
 * that is not QMP, closes the connection.  Events that arrive while a
 * command waits for its answer go to the caller's event callback.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qmp.h"
#include "virt.h"

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

void qmp_close(struct qmp *q)
{
	if (q->virt)
		virt_close(q);
	if (q->fd >= 0)
		close(q->fd);
	q->fd = -1;
	q->len = 0;
}

/* Read until a whole line is buffered or the deadline passes. */
static int qmp_read_line(struct qmp *q, long long deadline, char **line)
{
	char *nl;
	ssize_t n;
	int left;

	for (;;) {
		nl = memchr(q->buf, '\n', q->len);
		if (nl) {
			*nl = '\0';
			*line = q->buf;
			return 0;
		}
		if (q->len >= sizeof(q->buf) - 1)
			return -EMSGSIZE;	/* no line in 64 KiB: not QMP */
		left = (int)(deadline - now_ms());
		if (left <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = q->fd, .events = POLLIN };

		n = poll(&pfd, 1, left);
		if (n < 0 && errno != EINTR)
			return -errno;
		if (n <= 0)
			continue;
		n = read(q->fd, q->buf + q->len, sizeof(q->buf) - 1 - q->len);
		if (n == 0)
			return -ECONNRESET;
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return -errno;
		}
		q->len += (size_t)n;
	}
}

/* Drop the line qmp_read_line() returned from the buffer. */
static void qmp_consume(struct qmp *q, const char *line)
{
	size_t used = strlen(line) + 1;

	memmove(q->buf, q->buf + used, q->len - used);
	q->len -= used;
}

/*
 * jansson refuses a whole text for one integer beyond int64 ("too big
 * integer") or real beyond double, and QEMU prints what a guest reports
 * as uint64: a guest could make every answer unreadable.  Overwrite each
 * such number outside strings with null (such a number has at least 5
 * characters: the line keeps its length), so that only that field is
 * lost and every other number stays exact.  Returns how many.
 */
static unsigned int qmp_null_overflows(char *s)
{
	unsigned int n = 0;
	bool in_str = false;
	char *p, *end;
	size_t len;

	for (p = s; *p; p++) {
		if (in_str) {
			if (*p == '\\' && p[1])
				p++;
			else if (*p == '"')
				in_str = false;
			continue;
		}
		if (*p == '"') {
			in_str = true;
			continue;
		}
		if (*p != '-' && !isdigit((unsigned char)*p))
			continue;
		len = strspn(p, "0123456789+-.eE");
		errno = 0;
		if (strcspn(p, ".eE") < len) {
			double v = strtod(p, &end);

			if (!(errno == ERANGE && (v > 1 || v < -1)))
				errno = 0;
		} else {
			strtoll(p, &end, 10);
		}
		if (errno == ERANGE && len >= 4) {
			memset(p, ' ', len);
			memcpy(p, "null", 4);
			n++;
		}
		p += len - 1;
	}
	return n;
}

/*
 * The next JSON object from QEMU: an event (passed to the callback and
 * skipped), or the answer the caller waits for.
 */
static int qmp_next(struct qmp *q, long long deadline, json_t **msg)
{
	json_error_t jerr;
	char *line = NULL;
	int rc;

	*msg = NULL;
	for (;;) {
		rc = qmp_read_line(q, deadline, &line);
		if (rc)
			return rc;
		q->overflows = qmp_null_overflows(line);
		*msg = json_loads(line, 0, &jerr);
		qmp_consume(q, line);
		if (!*msg || !json_is_object(*msg)) {
			json_decref(*msg);
			return -EPROTO;
		}
		if (!json_object_get(*msg, "event"))
			return 0;
		if (q->on_event)
			q->on_event(q->opaque, *msg);
		json_decref(*msg);
	}
}

int qmp_connect(struct qmp *q, const char *path, int timeout_ms)
{
	long long deadline = now_ms() + timeout_ms;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *msg = NULL;
	int rc;

	qmp_close(q);
	if (virt_is_domain(path))
		return virt_connect(q, path + strlen(VIRT_PREFIX));
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	q->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (q->fd < 0)
		return -errno;
	if (connect(q->fd, (struct sockaddr *)&sa, sizeof(sa))) {
		rc = -errno;
		qmp_close(q);
		return rc;
	}
	/* the greeting, then capabilities negotiation */
	rc = qmp_next(q, deadline, &msg);
	if (!rc && !json_object_get(msg, "QMP"))
		rc = -EPROTO;
	json_decref(msg);
	if (!rc)
		rc = qmp_call(q, "qmp_capabilities", NULL, deadline - now_ms(),
			      NULL);
	if (rc)
		qmp_close(q);
	return rc;
}

static int qmp_send_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len) {
		n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The answer @msg (stolen) to a command: its "return", or its error. */
static int qmp_result(struct qmp *q, json_t *msg, json_t **ret)
{
	json_t *r = json_object_get(msg, "return");

	if (!r) {
		json_t *err = json_object_get(msg, "error");
		const char *desc = json_string_value(json_object_get(err, "desc"));

		snprintf(q->error, sizeof(q->error), "%s", desc ? desc : "?");
		json_decref(msg);
		return err ? -EREMOTEIO : -EPROTO;
	}
	if (ret)
		*ret = json_incref(r);
	json_decref(msg);
	return 0;
}

int qmp_answer(struct qmp *q, char *line, json_t **ret)
{
	json_error_t jerr;
	json_t *msg;

	q->overflows = qmp_null_overflows(line);
	msg = json_loads(line, 0, &jerr);
	if (!msg || !json_is_object(msg)) {
		json_decref(msg);
		return -EPROTO;
	}
	return qmp_result(q, msg, ret);
}

int qmp_call(struct qmp *q, const char *cmd, json_t *args, long long timeout_ms,
	     json_t **ret)
{
	long long deadline = now_ms() + timeout_ms;
	json_t *req, *msg;
	char *text;
	int rc;

	if (ret)
		*ret = NULL;
	if (q->virt)
		return virt_call(q, cmd, args, ret);
	if (q->fd < 0) {
		json_decref(args);
		return -ENOTCONN;
	}
	req = json_pack("{s:s}", "execute", cmd);
	if (args)
		json_object_set_new(req, "arguments", args);
	text = json_dumps(req, JSON_COMPACT);
	json_decref(req);
	if (!text)
		return -ENOMEM;
	rc = qmp_send_all(q->fd, text, strlen(text));
	if (!rc)
		rc = qmp_send_all(q->fd, "\n", 1);
	free(text);
	if (rc) {
		qmp_close(q);
		return rc;
	}

	rc = qmp_next(q, deadline, &msg);
	if (rc) {
		qmp_close(q);
		return rc;
	}
	return qmp_result(q, msg, ret);
}
