/* The control API of the mocks: plain HTTP/1.1 + JSON for the tests (see mock_control.c). */
#ifndef PUSHRELAY_MOCK_CONTROL_H
#define PUSHRELAY_MOCK_CONTROL_H

struct mock_server;

/* Listen on host:port on the server's event base; returns the bound port, dies on error. */
int mock_control_start(struct mock_server *server, const char *address);

#endif
