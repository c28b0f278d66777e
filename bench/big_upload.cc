// big_upload: streams one large multipart upload (generated, no disk reads)
// to conveyor and prints the throughput. Used by bench/upload.sh.
//
//   big_upload PORT TOKEN SIZE_MIB
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

bool SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: big_upload PORT TOKEN SIZE_MIB\n");
    return 2;
  }
  int port = std::atoi(argv[1]);
  std::string token = argv[2];
  int64_t size = std::atoll(argv[3]) << 20;
  const std::string b = "benchBoundary0123456789";
  std::string head = "--" + b +
                     "\r\nContent-Disposition: form-data; name=\"session_id\"\r\n\r\nbench\r\n--" +
                     b + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.txt\"\r\n"
                     "Content-Type: text/plain\r\n\r\n";
  std::string tail = "\r\n--" + b + "--\r\n";
  int64_t content_length = static_cast<int64_t>(head.size() + tail.size()) + size;
  std::string req = "POST /api/chat/upload/async HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer " +
                    token + "\r\nContent-Type: multipart/form-data; boundary=" + b +
                    "\r\nContent-Length: " + std::to_string(content_length) + "\r\n\r\n" + head;

  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    std::perror("connect");
    return 1;
  }
  std::string block(1 << 20, 'x');
  for (size_t i = 0; i < block.size(); i += 64) block[i] = '\n';
  auto t0 = std::chrono::steady_clock::now();
  bool ok = SendAll(fd, req.data(), req.size());
  for (int64_t left = size; ok && left > 0;) {
    size_t n = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(block.size())));
    ok = SendAll(fd, block.data(), n);
    left -= static_cast<int64_t>(n);
  }
  ok = ok && SendAll(fd, tail.data(), tail.size());
  std::string resp;
  char buf[4096];
  ssize_t r;
  while ((r = ::recv(fd, buf, sizeof buf, 0)) > 0) {
    resp.append(buf, static_cast<size_t>(r));
    if (resp.find("\r\n\r\n") != std::string::npos && resp.find("}") != std::string::npos) break;
  }
  auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::close(fd);
  int status = resp.size() > 12 ? std::atoi(resp.c_str() + 9) : 0;
  std::printf("status=%d bytes=%lld seconds=%.3f MB/s=%.1f\n", status,
              static_cast<long long>(size), secs, static_cast<double>(size) / 1e6 / secs);
  return ok && status == 202 ? 0 : 1;
}
