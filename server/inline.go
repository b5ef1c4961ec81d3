package server

// splitInline splits an inline (telnet) command line into arguments as
// Redis's sdssplitargs does: words are separated by spaces, tabs, CR, LF
// and NUL (and VT and FF before a word); "..." may hold separators and the escapes \xHH, \n, \r,
// \t, \b, \a and \<any byte>; '...' may hold separators and \'. A closing
// quote must be followed by a separator or the end of the line, and a
// quote left open is an error ("unbalanced quotes in request").
//
// It makes one pass and writes each unescaped argument over the bytes it
// came from (an argument is never longer than its source), so the
// arguments point into line, which it modifies, and it allocates nothing
// but the growth of args. NB: redcon's own inline parser allocates a
// buffer the size of the rest of the line for every word, quadratic in a
// line of many short words.
func splitInline(line []byte, args [][]byte) ([][]byte, error) {
	const errQuotes = protoError("unbalanced quotes in request")
	i, n := 0, len(line)
	for {
		for i < n && isInlineSpace(line[i]) {
			i++
		}
		if i == n {
			return args, nil
		}
		start, w := i, i
		inq, insq, closed := false, false, false
	word:
		for i < n {
			ch := line[i]
			switch {
			case inq:
				switch {
				case ch == '\\' && i+3 < n && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					line[w] = unhex(line[i+2])<<4 | unhex(line[i+3])
					i += 4
					w++
					continue
				case ch == '\\' && i+1 < n:
					switch e := line[i+1]; e {
					case 'n':
						line[w] = '\n'
					case 'r':
						line[w] = '\r'
					case 't':
						line[w] = '\t'
					case 'b':
						line[w] = '\b'
					case 'a':
						line[w] = '\a'
					default:
						line[w] = e
					}
					i += 2
					w++
					continue
				case ch == '"':
					closed = true
					i++
					break word
				}
			case insq:
				switch {
				case ch == '\\' && i+1 < n && line[i+1] == '\'':
					line[w] = '\''
					i += 2
					w++
					continue
				case ch == '\'':
					closed = true
					i++
					break word
				}
			default:
				switch {
				case ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == 0:
					break word
				case ch == '"':
					inq = true
					i++
					continue
				case ch == '\'':
					insq = true
					i++
					continue
				}
			}
			line[w] = ch
			w++
			i++
		}
		if (inq || insq) && (!closed || (i < n && !isInlineSpace(line[i]))) {
			// Open at the end of the line, or closed but not followed by a
			// separator ("a"b).
			return nil, errQuotes
		}
		args = append(args, line[start:w:w])
	}
}

func isInlineSpace(ch byte) bool {
	return ch == ' ' || ch == '\n' || ch == '\r' || ch == '\t' || ch == '\v' || ch == '\f' || ch == 0
}

func isHex(ch byte) bool {
	return ('0' <= ch && ch <= '9') || ('a' <= ch && ch <= 'f') || ('A' <= ch && ch <= 'F')
}

func unhex(ch byte) byte {
	switch {
	case ch <= '9':
		return ch - '0'
	case ch >= 'a':
		return ch - 'a' + 10
	default:
		return ch - 'A' + 10
	}
}
