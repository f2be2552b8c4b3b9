#ifndef CZLIB_SHIM_H
#define CZLIB_SHIM_H
/* zlib, for its CRC-32 only (S3's x-amz-checksum-crc32): Sources/Proxy/Payload/ZlibCRC32.swift. */
#include <zlib.h>
#endif
