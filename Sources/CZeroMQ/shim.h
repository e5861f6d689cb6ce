// CZeroMQ: the libzmq C API, used only through the ZeroMQ module's safe wrapper.
#include <zmq.h>
