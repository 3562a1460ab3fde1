# Cross build for 64-bit Arm Linux with Debian's g++-aarch64-linux-gnu, the
# libraries from Debian's arm64 multiarch packages (scripts/install-deps.sh
# --aarch64), and the programs and tests run under qemu-user.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
# pkg-config (utf8proc) must see the arm64 .pc files, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
# Boost is used header-only; its CMake package is the host's (same headers).
file(GLOB _boost_dirs /usr/lib/x86_64-linux-gnu/cmake/Boost-*)
if(_boost_dirs AND NOT Boost_DIR)
  list(GET _boost_dirs 0 Boost_DIR)
  set(Boost_DIR ${Boost_DIR} CACHE PATH "Boost's CMake package (headers only)")
endif()
# The arm64 libc and libstdc++ come from multiarch, beside the host's, so the
# emulated loader finds one consistent set (the cross toolchain's own libc
# mixed with multiarch's loader hangs at start).
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
