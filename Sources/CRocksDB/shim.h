// CRocksDB: RocksDB's C API (rocksdb/c.h), used only through the Storage module's wrapper.
#include <rocksdb/c.h>
