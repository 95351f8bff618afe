// SPDX-License-Identifier: MIT
/* echod: everything but this line lives in libechod, which the tests link too. */
#include "daemon.h"

int main(int argc, char **argv)
{
	return echod_main(argc, argv);
}
