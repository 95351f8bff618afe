// SPDX-License-Identifier: MIT
/* Placeholder until the control socket lands (issue 4). */
#include "server-internal.h"

int server_control_start(struct server *s)
{
	return 0;
}

void server_control_stop(struct server *s)
{
}

void server_control_event(struct server *s, int fd, uint32_t events)
{
}
