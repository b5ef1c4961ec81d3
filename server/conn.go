package server

import (
	"bytes"
	"errors"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/tidwall/redcon"
)

// Buffer sizes of a connection.
const (
	// inBufBytes is a connection's starting input buffer; it grows for a
	// command that does not fit and shrinks back once drained.
	inBufBytes = 16 << 10
	// maxInlineBytes bounds an inline (telnet) command line, as Redis's
	// PROTO_INLINE_MAX_SIZE does.
	maxInlineBytes = 64 << 10
	// maxHeaderBytes bounds a "*N" or "$N" line: 20 digits and a sign.
	maxHeaderBytes = 32
	// flushBytes is the reply size at which replies are written out
	// before the pipeline's last command; a bulk over it is written
	// straight from the value, without copying it into the buffer.
	flushBytes = 64 << 10
	// maxKeptArgs bounds the argument slice a connection keeps between
	// commands.
	maxKeptArgs = 1024
	// maxUnauthArgs and maxUnauthBulkBytes bound a command of a client
	// that has not authenticated yet, as Redis does since CVE-2021-32675,
	// so that it cannot make the server buffer MaxQueryBytes.
	maxUnauthArgs      = 10
	maxUnauthBulkBytes = 16 << 10
	// shutdownWriteTimeout bounds each write once shutdown has begun, so
	// that a client that does not read cannot hold up the shutdown.
	shutdownWriteTimeout = time.Second
)

// protoError is a RESP framing error: it is answered with
// "-ERR Protocol error: ..." and the connection is closed, as Redis does.
type protoError string

func (e protoError) Error() string { return "Protocol error: " + string(e) }

// errQueryLimit closes a connection whose command exceeds MaxQueryBytes.
var errQueryLimit = errors.New("max query buffer length exceeded")

// conn is one client connection. Its fields are owned by its goroutine
// except name and lastCmd, which CLIENT LIST reads from others.
type conn struct {
	s       *Server
	nc      net.Conn
	id      int64
	addr    string
	created time.Time
	name    atomic.Pointer[string]
	lastCmd atomic.Int32 // command id + 1, 0 before the first
	authed  bool
	quit    bool // close after this pipeline's replies are written
	dead    bool // a write failed
	// clock is when the command being parsed began, for its latency: the
	// end of the previous command of the same read, or the read's
	// arrival. Chaining the commands of a pipeline this way reads the
	// clock once per command instead of twice.
	clock time.Time
	// sets holds the plain SETs of the current run of them in a pipeline,
	// not yet written: key, value, key, value, ... (aliasing in, which
	// stays put until the next read). queued marks the command just run
	// as one of them. See Config.PipelineBatch and flushSets.
	sets     [][]byte
	setBytes int
	queued   bool

	// Input: in[r:w] is unparsed. The framer (frame) has checked
	// in[r:pos] and knows the state of the command that starts at r.
	in          []byte
	r, pos, w   int
	argsLeft    int   // bulks left in the command; -1 before its "*N" line
	bodyLeft    int64 // bytes of the current bulk (and its CRLF) not yet scanned
	discardLeft int64 // bytes of an oversized bulk still to drop as they arrive
	oversize    int64 // size of an oversized bulk in this command, 0 if none
	empty       bool  // the command is "*0" or "*-1"
	inline      bool  // the command is an inline (telnet) line
	args        [][]byte

	out      []byte // replies not yet written
	replyErr bool   // the current command replied with an error
	fold     [24]byte
}

// argLimit is the longest argument buffered: longer ones can be neither a
// key nor a value, so they are dropped as they arrive.
func (s *Server) argLimit() int64 {
	return int64(max(s.cfg.MaxKeyBytes, s.cfg.MaxValueBytes))
}

// serve runs the connection until the client leaves, a protocol error,
// the idle timeout or Shutdown.
func (c *conn) serve() {
	defer c.s.dropConn(c)
	c.in = make([]byte, inBufBytes)
	c.resetFrame()
	for {
		c.clock = time.Now()
		for !c.quit && !c.dead {
			complete, err := c.frame()
			if err != nil {
				c.protocolError(err)
				return
			}
			if !complete {
				break
			}
			switch {
			case c.inline:
				c.executeInline(c.in[c.r:c.pos])
			case !c.empty:
				c.execute(c.in[c.r:c.pos])
			}
			c.r = c.pos
			c.resetFrame()
			if len(c.out) >= flushBytes {
				c.flush()
				c.clock = time.Now() // a slow client's write is not the next command's
			}
		}
		c.flushSets()
		c.flush()
		if c.quit || c.dead {
			return
		}
		if err := c.readMore(); err != nil {
			return
		}
	}
}

func (c *conn) resetFrame() {
	c.argsLeft, c.bodyLeft, c.oversize, c.empty, c.inline = -1, 0, 0, false, false
	if cap(c.args) > maxKeptArgs {
		c.args = nil
	}
}

// protocolError answers a framing error and lets the connection close.
func (c *conn) protocolError(err error) {
	c.flushSets() // the commands before the bad one still run, and reply first
	msg := "ERR " + err.Error()
	if errors.Is(err, errQueryLimit) {
		c.s.log.WithField("client", c.addr).Warn("closing client that exceeded max query bytes")
		msg = "ERR max query buffer length exceeded, closing the connection"
	}
	c.s.m.protocolErrors.Inc()
	c.out = redcon.AppendError(c.out, msg)
	c.flush()
}

// readMore reads from the socket into in[w:], making room first: a drained
// buffer restarts at 0 (and shrinks back if it grew), a partial command is
// moved to the front, and a command larger than the buffer doubles it.
// The framer bounds a command to MaxQueryBytes, so the buffer stays below
// twice that.
func (c *conn) readMore() error {
	if c.r == c.w {
		c.r, c.pos, c.w = 0, 0, 0
		if len(c.in) > inBufBytes {
			c.in = make([]byte, inBufBytes)
		}
	} else if c.w == len(c.in) {
		if c.r > 0 {
			n := copy(c.in, c.in[c.r:c.w])
			c.pos -= c.r
			c.r, c.w = 0, n
		} else {
			nb := make([]byte, 2*len(c.in))
			copy(nb, c.in[:c.w])
			c.in = nb
		}
	}
	if t := c.s.cfg.IdleTimeout; t > 0 {
		_ = c.nc.SetReadDeadline(time.Now().Add(t))
	}
	// NB: check closing after setting the deadline: Shutdown sets closing
	// and then a past deadline, so either we see closing here or our
	// deadline is overwritten by Shutdown's and the Read returns at once.
	if c.s.closing.Load() {
		return net.ErrClosed
	}
	n, err := c.nc.Read(c.in[c.w:])
	c.s.nBytesIn.Add(int64(n))
	if c.discardLeft > 0 && n > 0 {
		drop := int(min(int64(n), c.discardLeft))
		copy(c.in[c.w:], c.in[c.w+drop:c.w+n])
		n -= drop
		c.discardLeft -= int64(drop)
	}
	c.w += n
	if n > 0 {
		return nil
	}
	return err
}

// frame advances the framer over in[pos:w] and reports whether in[r:pos]
// is a complete command.
//
// The framer is the guard that bounds memory. It reads every "*N" and
// "$N" header itself, before redcon parses anything, so that:
//   - a bulk over MaxBulkBytes, a count over MaxArgs or a malformed header
//     is a protocol error (reply, close) before a byte of it is buffered;
//   - a bulk over both MaxKeyBytes and MaxValueBytes (but within
//     MaxBulkBytes) is never buffered: its header is rewritten to an
//     empty bulk and its bytes are dropped as they arrive (readMore), and
//     the command then fails with an error, keeping the connection;
//   - a command longer than MaxQueryBytes closes the connection.
//
// redcon's own Reader cannot do this: it buffers whatever an announced
// length asks for, growing its buffer while the bytes come in, and keeps
// growing it under a steady pipeline. So the server keeps its own buffer
// and hands redcon only whole commands (redcon.ReadNextCommand).
func (c *conn) frame() (bool, error) {
	lim := &c.s.cfg
	for {
		if c.discardLeft > 0 {
			return false, nil
		}
		if c.argsLeft == 0 && c.bodyLeft == 0 {
			return true, nil
		}
		if c.bodyLeft > 0 {
			adv := min(c.bodyLeft, int64(c.w-c.pos))
			c.pos += int(adv)
			c.bodyLeft -= adv
			if c.bodyLeft > 0 {
				return false, nil
			}
			if c.argsLeft == 0 {
				return true, nil
			}
			continue
		}
		if c.pos == c.w {
			return false, nil
		}
		if c.argsLeft < 0 {
			if c.in[c.r] != '*' {
				return c.frameInline()
			}
			line, ok, err := c.headerLine("invalid multibulk length")
			if !ok || err != nil {
				return false, err
			}
			n, ok := parseLen(line[1:])
			if !ok || n > int64(lim.MaxArgs) {
				return false, protoError("invalid multibulk length")
			}
			if !c.authed && n > maxUnauthArgs {
				return false, protoError("unauthenticated multibulk length")
			}
			if n <= 0 {
				// Redis ignores "*0" and "*-1"; redcon rejects the latter.
				c.argsLeft, c.empty = 0, true
				return true, nil
			}
			c.argsLeft = int(n)
			continue
		}
		if c.in[c.pos] != '$' {
			return false, protoError("expected '$', got '" + printable(c.in[c.pos]) + "'")
		}
		hdr := c.pos
		line, ok, err := c.headerLine("invalid bulk length")
		if !ok || err != nil {
			return false, err
		}
		n, ok := parseLen(line[1:])
		if !ok || n < 0 || n > lim.MaxBulkBytes {
			return false, protoError("invalid bulk length")
		}
		if !c.authed && n > maxUnauthBulkBytes {
			return false, protoError("unauthenticated bulk length")
		}
		c.argsLeft--
		if n > c.s.argLimit() {
			c.skipBulk(hdr, n)
			continue
		}
		if int64(c.pos-c.r)+n+2 > lim.MaxQueryBytes {
			return false, errQueryLimit
		}
		c.bodyLeft = n + 2
	}
}

// skipBulk replaces the bulk whose header starts at hdr (and announces n
// bytes) by an empty bulk, drops the part of it already buffered and
// leaves the rest to readMore.
func (c *conn) skipBulk(hdr int, n int64) {
	const empty = "$0\r\n\r\n"
	dropNow := int(min(n+2, int64(c.w-c.pos)))
	tail := c.w - c.pos - dropNow
	if need := hdr + len(empty) + tail; need > len(c.in) {
		nb := make([]byte, max(2*len(c.in), need))
		copy(nb, c.in[:c.w])
		c.in = nb
	}
	// Move the bytes after the bulk first: the empty bulk may be longer
	// than the header it replaces when nothing of the body is buffered,
	// and then there is no tail to overwrite.
	copy(c.in[hdr+len(empty):], c.in[c.pos+dropNow:c.w])
	copy(c.in[hdr:], empty)
	c.pos = hdr + len(empty)
	c.w = c.pos + tail
	c.discardLeft = n + 2 - int64(dropNow)
	c.oversize = max(c.oversize, n)
}

// headerLine returns the "*N" or "$N" line at pos (without CRLF) and moves
// pos past it; ok is false when the line is not all buffered yet.
func (c *conn) headerLine(what string) ([]byte, bool, error) {
	i := bytes.IndexByte(c.in[c.pos:c.w], '\n')
	if i < 0 {
		if c.w-c.pos > maxHeaderBytes {
			return nil, false, protoError(what)
		}
		return nil, false, nil
	}
	if i > maxHeaderBytes || i == 0 || c.in[c.pos+i-1] != '\r' {
		return nil, false, protoError(what)
	}
	line := c.in[c.pos : c.pos+i-1]
	c.pos += i + 1
	return line, true, nil
}

// frameInline frames an inline command: one line of space-separated words.
func (c *conn) frameInline() (bool, error) {
	if c.in[c.r] == '$' {
		// NB: redcon reads a line starting with '$' as Tile38's native
		// protocol; kvs does not speak it.
		return false, protoError("expected '*', got '$'")
	}
	i := bytes.IndexByte(c.in[c.pos:c.w], '\n')
	if i < 0 {
		c.pos = c.w
		if c.w-c.r > maxInlineBytes {
			return false, protoError("too big inline request")
		}
		return false, nil
	}
	c.pos += i + 1
	if c.pos-c.r > maxInlineBytes {
		return false, protoError("too big inline request")
	}
	c.argsLeft, c.inline = 0, true
	return true, nil
}

// parseLen parses the decimal in a "*N" or "$N" header: an optional '-'
// and at most 18 digits, so it cannot overflow.
func parseLen(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return 0, false
		}
		n = n*10 + int64(ch-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func printable(b byte) string {
	if b >= 0x20 && b < 0x7f {
		return string(rune(b))
	}
	return "\\x" + strconv.FormatUint(uint64(b), 16)
}

// flush writes the pending replies.
func (c *conn) flush() {
	if len(c.out) == 0 || c.dead {
		c.out = c.out[:0]
		return
	}
	c.write(c.out)
	if cap(c.out) > 4*flushBytes {
		c.out = nil
	} else {
		c.out = c.out[:0]
	}
}

// write writes p to the client within Config.WriteTimeout, or within
// shutdownWriteTimeout once shutdown has begun; a write that fails or
// times out marks the connection dead. Without a deadline a client that
// never reads would block its goroutine in Write forever, and Shutdown
// with it.
func (c *conn) write(p []byte) {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.s.cfg.WriteTimeout))
	// NB: check closing after setting the deadline: shutdown sets closing
	// and then a short deadline on every connection, so either we see
	// closing here or shutdown's deadline overwrites ours.
	if c.s.closing.Load() {
		_ = c.nc.SetWriteDeadline(time.Now().Add(min(c.s.cfg.WriteTimeout, shutdownWriteTimeout)))
	}
	n, err := c.nc.Write(p)
	c.s.nBytesOut.Add(int64(n))
	if err != nil {
		c.dead = true
	}
}

// Reply writers. They append RESP to c.out with redcon's encoders.

func (c *conn) writeOK()             { c.out = redcon.AppendOK(c.out) }
func (c *conn) writeString(s string) { c.out = redcon.AppendString(c.out, s) }
func (c *conn) writeInt(n int64)     { c.out = redcon.AppendInt(c.out, n) }
func (c *conn) writeNull()           { c.out = redcon.AppendNull(c.out) }
func (c *conn) writeArray(n int)     { c.out = redcon.AppendArray(c.out, n) }
func (c *conn) writeBulkString(s string) {
	c.out = redcon.AppendBulkString(c.out, s)
}

func (c *conn) writeError(msg string) {
	c.replyErr = true
	c.out = redcon.AppendError(c.out, msg)
}

// writeBulk appends a bulk reply; a large one is written straight from v
// after the pending replies, so it is never copied into the buffer.
func (c *conn) writeBulk(v []byte) {
	if len(v) < flushBytes {
		c.out = redcon.AppendBulk(c.out, v)
		return
	}
	c.out = append(c.out, '$')
	c.out = strconv.AppendInt(c.out, int64(len(v)), 10)
	c.out = append(c.out, '\r', '\n')
	c.flush()
	if !c.dead {
		c.write(v)
	}
	c.out = append(c.out, '\r', '\n')
}
