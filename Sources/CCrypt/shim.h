// libxcrypt (Debian's libcrypt-dev, which libc6-dev depends on): crypt_r checks bcrypt ($2a$/$2b$/$2y$)
// password hashes, as nats-server's bcrypt.CompareHashAndPassword does.
#include <crypt.h>
