/*
 * The Lua scripts the redis state runs (state_redis_scripts.c). Constant data: any
 * thread. docs/state-redis.md describes each one.
 */
#ifndef PUSHRELAY_STATE_REDIS_SCRIPTS_H
#define PUSHRELAY_STATE_REDIS_SCRIPTS_H

enum state_script {
	STATE_SCRIPT_PRESENCE = 0,	/* enter (update), leave, sync */
	STATE_SCRIPT_READ,		/* a read: the room's unread count to 0 */
	STATE_SCRIPT_MESSAGE,		/* decide for a chunk of a message's candidates */
	STATE_SCRIPT_CHANGE,		/* an edit or a deletion of held messages */
	STATE_SCRIPT_POLL,		/* claim due buckets and stale claims */
	STATE_SCRIPT_FLUSH,		/* notified marks, finished claims, leases */
	STATE_SCRIPT_COUNT,
};

/* A script is its prelude and its body, one after the other. */
struct state_redis_script {
	const char *name;
	const char *prelude;
	const char *body;
};

extern const struct state_redis_script state_redis_scripts[STATE_SCRIPT_COUNT];

#endif
