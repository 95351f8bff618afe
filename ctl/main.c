// SPDX-License-Identifier: MIT
/* echoctl: everything lives in libechoctl, which the tests link too. */
#include "ctl.h"

int main(int argc, char **argv)
{
	return ctl_main(argc, argv);
}
