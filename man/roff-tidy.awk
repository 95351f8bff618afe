# SPDX-License-Identifier: MIT
# scdoc 1.11 emits .P where a paragraph cannot start: right after a heading or
# an indent change, and right before a heading or the end of an indent. mandoc
# -T lint reports each as an empty paragraph; drop those, keep everything else.
function opens(l) { return l ~ /^\.(TH|SH|SS|RS|TP|IP)( |$)/ }
function closes(l) { return l ~ /^\.(SH|SS|RE|TP|IP|P)( |$)/ }
{
	if (held) {
		if (!closes($0))
			print ".P"
		held = 0
	}
	if ($0 == ".P") {
		held = !opens(prev)
		next
	}
	print
	prev = $0
}
