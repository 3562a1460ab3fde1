// The HTTP/1.1 transport: Boost.Beast over Asio, asynchronous, a few I/O
// threads for every connection and a bounded pool of handler threads for the
// requests that are fully read. A connection costs a socket and a buffer,
// never a thread, so slow or idle clients cannot starve the others.
//
// Limits (each a clear status, then the connection closes): header bytes and
// count (431), body bytes whether Content-Length or chunked (413), a deadline
// for the headers and one for each body read (the connection is dropped),
// open connections (503 at once, never a silent queue), keep-alive idle time.
#pragma once

#include <memory>
#include <string>

#include "server/http/access_log.h"
#include "server/http/router.h"

namespace flashneox {

struct HttpLimits {
  size_t max_header_bytes = 16 << 10;  // request line + headers
  int max_header_count = 100;
  size_t max_body_bytes = 1 << 20;
  double header_timeout_s = 10.0;      // from connect (or from the last response) to the full headers
  double body_read_timeout_s = 10.0;   // for each read of the body
  double keep_alive_timeout_s = 15.0;  // idle between requests on one connection
  double write_timeout_s = 30.0;       // for each write to a client
  int max_connections = 2048;          // open at once; more get 503
  int io_threads = 2;
  int handler_threads = 64;            // requests being handled at once
};

class HttpServer {
 public:
  HttpServer(const Router& router, HttpLimits limits, AccessLogFormat log_format);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens (port 0: any free port); returns the port. Throws
  // Error when the address is taken or not local: never shares a port.
  int listen(const std::string& host, int port);
  void start();           // I/O and handler threads; returns at once
  void stop_accepting();  // closes the listener; requests arriving on open connections get 503
  int in_flight() const;  // requests read and not yet answered
  int open_connections() const;
  void stop();            // closes every connection and joins the threads

  struct Impl;  // the Asio state; public only so the .cc's sessions can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace flashneox
