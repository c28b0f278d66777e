// The one translation unit that compiles Asio and Beast
// (BOOST_ASIO_SEPARATE_COMPILATION / BOOST_BEAST_SEPARATE_COMPILATION are set
// project-wide), so every other file only parses their headers.
#include <boost/asio/impl/src.hpp>
#include <boost/beast/src.hpp>
