/*
 * admin.h - what each admin command does (admin.c), one handler per entry
 * of the shared command table (common/admin_proto.h).  Runs in the control
 * thread; replies go through control.h's admin_data/admin_ok/admin_err.
 */
#ifndef CHATD_ADMIN_H
#define CHATD_ADMIN_H

#include "admin_proto.h"

struct admin_conn;

/* Runs req (already parsed and checked) and answers it. */
void admin_dispatch(struct admin_conn *ac, const struct admin_request *req);

#endif
