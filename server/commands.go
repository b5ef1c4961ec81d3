package server

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kvs-lab/kvs"
	"github.com/tidwall/redcon"
)

// command is one entry of the command table.
type command struct {
	name  string // lower case
	arity int    // Redis's convention: n > 0 exactly n arguments (name included), n < 0 at least -n
	flags cmdFlags
	run   func(c *conn, args [][]byte)
	id    int // index in commands, and in the server's metric children
}

type cmdFlags uint8

const (
	flagWrite    cmdFlags = 1 << iota // changes data
	flagReadonly                      // reads data
	flagNoAuth                        // allowed before AUTH
	flagAdmin                         // server administration
)

// commands lists every command; commandTable indexes it by lower-case name.
var (
	commands     []*command
	commandTable = map[string]*command{}
)

func init() {
	for _, c := range []*command{
		{name: "ping", arity: -1, run: cmdPing},
		{name: "echo", arity: 2, run: cmdEcho},
		{name: "get", arity: 2, flags: flagReadonly, run: cmdGet},
		{name: "set", arity: -3, flags: flagWrite, run: cmdSet},
		{name: "getset", arity: 3, flags: flagWrite, run: cmdGetSet},
		{name: "del", arity: -2, flags: flagWrite, run: cmdDel},
		{name: "exists", arity: -2, flags: flagReadonly, run: cmdExists},
		{name: "mget", arity: -2, flags: flagReadonly, run: cmdMGet},
		{name: "mset", arity: -3, flags: flagWrite, run: cmdMSet},
		{name: "incr", arity: 2, flags: flagWrite, run: cmdIncr},
		{name: "incrby", arity: 3, flags: flagWrite, run: cmdIncrBy},
		{name: "decr", arity: 2, flags: flagWrite, run: cmdDecr},
		{name: "decrby", arity: 3, flags: flagWrite, run: cmdDecrBy},
		{name: "append", arity: 3, flags: flagWrite, run: cmdAppend},
		{name: "strlen", arity: 2, flags: flagReadonly, run: cmdStrlen},
		{name: "scan", arity: -2, flags: flagReadonly, run: cmdScan},
		{name: "dbsize", arity: 1, flags: flagReadonly, run: cmdDBSize},
		{name: "info", arity: -1, run: cmdInfo},
		{name: "command", arity: -1, run: cmdCommand},
		{name: "client", arity: -2, run: cmdClient},
		{name: "select", arity: 2, run: cmdSelect},
		{name: "config", arity: -2, flags: flagAdmin, run: cmdConfig},
		{name: "auth", arity: -2, flags: flagNoAuth, run: cmdAuth},
		{name: "quit", arity: -1, flags: flagNoAuth, run: cmdQuit},
		{name: "shutdown", arity: -1, flags: flagAdmin, run: cmdShutdown},
		{name: "kvs.compact", arity: 1, flags: flagAdmin, run: cmdCompact},
		{name: "kvs.stats", arity: 1, run: cmdStats},
	} {
		c.id = len(commands)
		commands = append(commands, c)
		commandTable[c.name] = c
	}
	setCmd = commandTable["set"]
}

// setCmd is SET, whose plain form a pipeline may queue (queueSet).
var setCmd *command

// lookup finds the command named name, case-insensitively, without
// allocating: the name is folded into a fixed buffer of the connection
// and the map is indexed with a string conversion the compiler does not
// copy.
func (c *conn) lookup(name []byte) *command {
	if len(name) > len(c.fold) {
		return nil
	}
	b := c.fold[:len(name)]
	for i, ch := range name {
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		b[i] = ch
	}
	return commandTable[string(b)]
}

// execute parses one framed multibulk command with redcon and runs it.
func (c *conn) execute(raw []byte) {
	complete, args, _, _, err := redcon.ReadNextCommand(raw, c.args)
	if err != nil || !complete {
		if err == nil {
			err = protoError("incomplete command")
		}
		c.protocolError(err)
		c.dead = true
		return
	}
	c.args = args
	c.run(args)
}

// executeInline splits an inline (telnet) command line, which ends with
// its '\n', and runs it. The arguments are unescaped in place, in the
// connection's buffer: the line is consumed by this command.
func (c *conn) executeInline(line []byte) {
	line = line[:len(line)-1] // the '\n'
	if len(line) > 0 && line[len(line)-1] == '\r' {
		line = line[:len(line)-1]
	}
	args, err := splitInline(line, c.args[:0])
	if err != nil {
		c.protocolError(err)
		c.dead = true
		return
	}
	c.args = args
	c.run(args)
}

// run runs the command args names.
func (c *conn) run(args [][]byte) {
	if len(args) == 0 {
		return
	}
	cmd := c.lookup(args[0])
	if len(c.sets) > 0 && (cmd != setCmd || len(args) != 3 || !c.authed || c.oversize > 0) {
		// Any reply but a queued SET's must follow the queued SETs'.
		c.flushSets()
	}
	if cmd == nil {
		// Counted as an error reply (INFO total_error_replies), as Redis
		// does, and in its own metric, since it has no command to
		// belong to.
		c.s.m.unknown.Inc()
		c.s.nErrors.Add(1)
		c.writeError(unknownCommand(args))
		c.clock = time.Now()
		return
	}
	c.lastCmd.Store(int32(cmd.id + 1))
	m := &c.s.m.cmds[cmd.id]
	c.replyErr = false
	switch {
	case cmd.arity > 0 && len(args) != cmd.arity, cmd.arity < 0 && len(args) < -cmd.arity:
		c.writeError("ERR wrong number of arguments for '" + cmd.name + "' command")
	case !c.authed && cmd.flags&flagNoAuth == 0:
		c.writeError("NOAUTH Authentication required.")
	case c.oversize > 0:
		c.writeError(fmt.Sprintf("ERR argument too large: %d bytes, the limit is %d for keys and %d for values", c.oversize, c.s.cfg.MaxKeyBytes, c.s.cfg.MaxValueBytes))
	default:
		cmd.run(c, args)
	}
	if c.queued {
		// Counted and timed when its merged write runs (flushSets).
		c.queued = false
		return
	}
	m.calls.Inc()
	now := time.Now()
	if !c.clock.IsZero() {
		m.latency.Observe(now.Sub(c.clock).Seconds())
	}
	c.clock = now
	c.s.nCommands.Add(1)
	if c.replyErr {
		m.errors.Inc()
		c.s.nErrors.Add(1)
	}
}

// queueSet adds a plain SET to the current run of them (Config.
// PipelineBatch). Its reply is written by flushSets, which runs before any
// other reply, when the run is full, and at the end of what was read.
func (c *conn) queueSet(key, val []byte) {
	c.sets = append(c.sets, key, val)
	c.setBytes += len(key) + len(val)
	c.queued = true
	if len(c.sets)/2 >= c.s.cfg.PipelineBatch || c.setBytes >= pipelineBatchBytes {
		c.flushSets()
	}
}

// flushSets writes the queued SETs as one backend write (MSet: one atomic
// batch) and replies to each, in order: +OK, or the write's error for
// every one of them. Each SET counts as a command, timed as the whole
// merged write.
func (c *conn) flushSets() {
	n := len(c.sets) / 2
	if n == 0 {
		return
	}
	start := time.Now()
	var err error
	if n == 1 {
		err = c.s.b.Set(c.sets[0], c.sets[1])
	} else {
		err = c.s.b.MSet(c.sets)
	}
	now := time.Now()
	m := &c.s.m.cmds[setCmd.id]
	for range n {
		c.replyErr = false
		if err != nil {
			c.backendError(err)
		} else {
			c.writeOK()
		}
		m.calls.Inc()
		m.latency.Observe(now.Sub(start).Seconds())
		if c.replyErr {
			m.errors.Inc()
			c.s.nErrors.Add(1)
		}
	}
	c.s.nCommands.Add(int64(n))
	clear(c.sets) // drop the references into the input buffer
	c.sets, c.setBytes = c.sets[:0], 0
	c.clock = now
}

// unknownCommand is Redis's reply text for an unknown command: the name,
// then the first arguments, quoted, up to 128 bytes.
func unknownCommand(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(truncate(args[0], 128))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:] {
		if b.Len() >= 128+64 {
			break
		}
		b.WriteByte('\'')
		b.Write(truncate(a, 128))
		b.WriteString("' ")
	}
	return b.String()
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// Argument checks. Each writes the error reply and returns false.

func (c *conn) checkKey(key []byte) bool {
	switch {
	case len(key) == 0:
		c.writeError("ERR empty keys are not supported by kvs")
		return false
	case len(key) > c.s.cfg.MaxKeyBytes:
		c.writeError(fmt.Sprintf("ERR key too large: %d bytes, the limit is %d", len(key), c.s.cfg.MaxKeyBytes))
		return false
	}
	return true
}

func (c *conn) checkValue(v []byte) bool {
	if len(v) > c.s.cfg.MaxValueBytes {
		c.writeError(fmt.Sprintf("ERR value too large: %d bytes, the limit is %d", len(v), c.s.cfg.MaxValueBytes))
		return false
	}
	return true
}

// backendError replies with err, naming Redis's text where there is one.
func (c *conn) backendError(err error) {
	var raw RawError
	switch {
	case errors.As(err, &raw):
		c.writeError(string(raw))
	case errors.Is(err, ErrNotInteger), errors.Is(err, ErrOverflow), errors.Is(err, ErrTooLarge):
		c.writeError(err.Error())
	case errors.Is(err, kvs.ErrKeyTooLarge), errors.Is(err, kvs.ErrValueTooLarge), errors.Is(err, kvs.ErrEmptyKey), errors.Is(err, kvs.ErrBatchTooLarge):
		c.writeError("ERR " + err.Error())
	default:
		c.s.log.WithError(err).Warn("backend error")
		c.writeError("ERR " + err.Error())
	}
}

func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		ch := b[i]
		if 'A' <= ch && ch <= 'Z' {
			ch += 'a' - 'A'
		}
		if ch != s[i] {
			return false
		}
	}
	return true
}

func cmdPing(c *conn, args [][]byte) {
	switch len(args) {
	case 1:
		c.writeString("PONG")
	case 2:
		c.writeBulk(args[1])
	default:
		c.writeError("ERR wrong number of arguments for 'ping' command")
	}
}

func cmdEcho(c *conn, args [][]byte) { c.writeBulk(args[1]) }

func cmdGet(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	v, err := c.s.b.Get(args[1])
	switch {
	case err == nil:
		c.writeBulk(v)
	case errors.Is(err, kvs.ErrNotFound):
		c.writeNull()
	default:
		c.backendError(err)
	}
}

func cmdSet(c *conn, args [][]byte) {
	key, val := args[1], args[2]
	if len(args) == 3 && c.s.cfg.PipelineBatch > 1 && len(key) > 0 && len(key) <= c.s.cfg.MaxKeyBytes && len(val) <= c.s.cfg.MaxValueBytes {
		c.queueSet(key, val)
		return
	}
	c.flushSets()
	if !c.checkKey(key) || !c.checkValue(val) {
		return
	}
	u := Update{Op: OpSet, Value: val}
	get := false
	for _, o := range args[3:] {
		switch {
		case equalFold(o, "nx") && u.Cond != CondXX:
			u.Cond = CondNX
		case equalFold(o, "xx") && u.Cond != CondNX:
			u.Cond = CondXX
		case equalFold(o, "get"):
			get = true
		case equalFold(o, "ex"), equalFold(o, "px"), equalFold(o, "exat"), equalFold(o, "pxat"), equalFold(o, "keepttl"):
			c.writeError("ERR TTL options are not supported by kvs")
			return
		default:
			c.writeError("ERR syntax error")
			return
		}
	}
	if u.Cond == CondNone && !get {
		if err := c.s.b.Set(key, val); err != nil {
			c.backendError(err)
			return
		}
		c.writeOK()
		return
	}
	res, err := c.s.b.Update(key, u)
	switch {
	case err != nil:
		c.backendError(err)
	case get && res.Existed:
		c.writeBulk(res.Old)
	case get:
		c.writeNull()
	case res.Applied:
		c.writeOK()
	default:
		c.writeNull()
	}
}

func cmdGetSet(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) || !c.checkValue(args[2]) {
		return
	}
	res, err := c.s.b.Update(args[1], Update{Op: OpSet, Value: args[2]})
	switch {
	case err != nil:
		c.backendError(err)
	case res.Existed:
		c.writeBulk(res.Old)
	default:
		c.writeNull()
	}
}

func cmdDel(c *conn, args [][]byte) {
	for _, k := range args[1:] {
		if !c.checkKey(k) {
			return
		}
	}
	n, err := c.s.b.Delete(args[1:])
	if err != nil {
		c.backendError(err)
		return
	}
	c.writeInt(int64(n))
}

func cmdExists(c *conn, args [][]byte) {
	for _, k := range args[1:] {
		if !c.checkKey(k) {
			return
		}
	}
	// MGet reads all keys at one moment, so EXISTS a b never counts half
	// of an MSET or a DEL. A key named twice counts twice, as in Redis.
	vals, err := c.s.b.MGet(args[1:], 0)
	if err != nil {
		c.backendError(err)
		return
	}
	n := 0
	for _, v := range vals {
		if v != nil {
			n++
		}
	}
	c.writeInt(int64(n))
}

func cmdMGet(c *conn, args [][]byte) {
	keys := args[1:]
	for _, k := range keys {
		if !c.checkKey(k) {
			return
		}
	}
	// Read everything before replying, at one moment (never half of an
	// MSET): an error half-way must be the whole reply, not an array cut
	// short.
	vals, err := c.s.b.MGet(keys, c.s.cfg.MaxReplyBytes)
	switch {
	case errors.Is(err, ErrReplyTooLarge):
		c.writeError(fmt.Sprintf("ERR reply too large: the values pass the limit of %d bytes; read fewer keys at once", c.s.cfg.MaxReplyBytes))
		return
	case err != nil:
		c.backendError(err)
		return
	}
	c.writeArray(len(keys))
	for _, v := range vals {
		if v != nil {
			c.writeBulk(v)
		} else {
			c.writeNull()
		}
	}
}

func cmdMSet(c *conn, args [][]byte) {
	pairs := args[1:]
	if len(pairs)%2 != 0 {
		c.writeError("ERR wrong number of arguments for 'mset' command")
		return
	}
	for i := 0; i < len(pairs); i += 2 {
		if !c.checkKey(pairs[i]) || !c.checkValue(pairs[i+1]) {
			return
		}
	}
	if err := c.s.b.MSet(pairs); err != nil {
		c.backendError(err)
		return
	}
	c.writeOK()
}

func (c *conn) incrBy(key []byte, delta int64) {
	if !c.checkKey(key) {
		return
	}
	res, err := c.s.b.Update(key, Update{Op: OpIncr, Delta: delta})
	if err != nil {
		c.backendError(err)
		return
	}
	c.writeInt(res.Int)
}

func cmdIncr(c *conn, args [][]byte) { c.incrBy(args[1], 1) }
func cmdDecr(c *conn, args [][]byte) { c.incrBy(args[1], -1) }

func cmdIncrBy(c *conn, args [][]byte) {
	d, err := parseInt64(args[2])
	if err != nil {
		c.writeError(ErrNotInteger.Error())
		return
	}
	c.incrBy(args[1], d)
}

func cmdDecrBy(c *conn, args [][]byte) {
	d, err := parseInt64(args[2])
	if err != nil {
		c.writeError(ErrNotInteger.Error())
		return
	}
	if d == math.MinInt64 {
		c.writeError("ERR decrement would overflow")
		return
	}
	c.incrBy(args[1], -d)
}

func cmdAppend(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) || !c.checkValue(args[2]) {
		return
	}
	res, err := c.s.b.Update(args[1], Update{Op: OpAppend, Value: args[2], MaxValue: c.s.cfg.MaxValueBytes})
	if err != nil {
		c.backendError(err)
		return
	}
	c.writeInt(int64(res.Len))
}

func cmdStrlen(c *conn, args [][]byte) {
	if !c.checkKey(args[1]) {
		return
	}
	v, err := c.s.b.Get(args[1])
	switch {
	case err == nil:
		c.writeInt(int64(len(v)))
	case errors.Is(err, kvs.ErrNotFound):
		c.writeInt(0)
	default:
		c.backendError(err)
	}
}

// maxScanCount bounds the keys one SCAN call examines, whatever COUNT says.
const maxScanCount = 100000

func cmdScan(c *conn, args [][]byte) {
	cur, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		c.writeError("ERR invalid cursor")
		return
	}
	count := 10
	typeMismatch := false
	var pattern []byte
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			c.writeError("ERR syntax error")
			return
		}
		switch {
		case equalFold(args[i], "match"):
			pattern = args[i+1]
		case equalFold(args[i], "count"):
			n, err := parseInt64(args[i+1])
			if err != nil {
				c.writeError(ErrNotInteger.Error())
				return
			}
			if n < 1 {
				c.writeError("ERR syntax error")
				return
			}
			count = int(min(n, maxScanCount))
		case equalFold(args[i], "type"):
			// Every kvs key is a string: another type matches none,
			// whatever options come later.
			typeMismatch = !equalFold(args[i+1], "string")
		default:
			c.writeError("ERR syntax error")
			return
		}
	}
	var start []byte
	if cur != 0 {
		var ok bool
		if start, ok = c.s.cursors.get(cur); !ok {
			c.writeError("ERR invalid cursor")
			return
		}
	}
	var match func([]byte) bool
	if pattern != nil && !(len(pattern) == 1 && pattern[0] == '*') {
		match = func(k []byte) bool { return globMatch(pattern, k) }
	}
	var keys [][]byte
	var nextKey []byte
	if !typeMismatch {
		keys, nextKey, err = c.s.b.Scan(start, count, c.s.cfg.MaxReplyBytes, match)
		if err != nil {
			c.backendError(err)
			return
		}
	}
	c.writeArray(2)
	// The call consumed cursor cur: the table retires it first (see
	// cursorTable.advance), so live cursors track the scans in progress.
	if nextKey == nil {
		c.s.cursors.advance(cur, nil)
		c.writeBulkString("0")
	} else {
		c.writeBulkString(strconv.FormatUint(c.s.cursors.advance(cur, nextKey), 10))
	}
	c.writeArray(len(keys))
	for _, k := range keys {
		c.writeBulk(k)
	}
}

func cmdDBSize(c *conn, _ [][]byte) {
	n, err := c.s.b.KeyCount()
	if err != nil {
		c.backendError(err)
		return
	}
	c.writeInt(n)
}

func cmdSelect(c *conn, args [][]byte) {
	n, err := parseInt64(args[1])
	switch {
	case err != nil:
		c.writeError(ErrNotInteger.Error())
	case n != 0:
		c.writeError("ERR DB index is out of range")
	default:
		c.writeOK()
	}
}

// cmdConfig answers CONFIG GET with the few Redis parameters that have a
// kvs meaning, read-only, so that tools which ask (redis-benchmark asks
// for "save" and "appendonly" before it starts) get an answer. kvs is
// configured by flags and --config at start; CONFIG SET and the rest are
// refused.
func cmdConfig(c *conn, args [][]byte) {
	sub := strings.ToLower(string(args[1]))
	if sub != "get" {
		c.writeError("ERR CONFIG " + strings.ToUpper(sub) + " is not supported by kvs: set options with kvs serve's flags or --config file and restart")
		return
	}
	if len(args) < 3 {
		c.writeError("ERR wrong number of arguments for 'config|get' command")
		return
	}
	mode := c.s.b.SyncMode()
	appendonly, appendfsync := "yes", "always"
	if mode == SyncNone {
		appendonly, appendfsync = "no", "no"
	}
	params := [][2]string{
		{"appendonly", appendonly},
		{"appendfsync", appendfsync},
		{"databases", "1"},
		{"maxclients", strconv.Itoa(c.s.cfg.MaxClients)},
		{"proto-max-bulk-len", strconv.FormatInt(c.s.cfg.MaxBulkBytes, 10)},
		{"save", ""},
		{"timeout", strconv.Itoa(int(c.s.cfg.IdleTimeout.Seconds()))},
	}
	var out [][2]string
	for _, p := range params {
		for _, pat := range args[2:] {
			if globMatch(bytes.ToLower(pat), []byte(p[0])) {
				out = append(out, p)
				break
			}
		}
	}
	c.writeArray(2 * len(out))
	for _, p := range out {
		c.writeBulkString(p[0])
		c.writeBulkString(p[1])
	}
}

func cmdAuth(c *conn, args [][]byte) {
	if len(args) > 3 {
		c.writeError("ERR syntax error")
		return
	}
	if c.s.cfg.Password == "" {
		c.writeError("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
		return
	}
	user, pass := []byte("default"), args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	// Compare digests: ConstantTimeCompare returns at once on a length
	// mismatch, so comparing the passwords themselves would tell their
	// length.
	sum := sha256.Sum256(pass)
	if string(user) != "default" || subtle.ConstantTimeCompare(sum[:], c.s.passDigest[:]) != 1 {
		c.writeError("WRONGPASS invalid username-password pair or user is disabled.")
		return
	}
	c.authed = true
	c.writeOK()
}

func cmdQuit(c *conn, _ [][]byte) {
	c.writeOK()
	c.quit = true
}

// cmdShutdown begins the server's shutdown. Like Redis it closes the
// connection without a reply; the other connections finish what they
// have read.
func cmdShutdown(c *conn, args [][]byte) {
	for _, a := range args[1:] {
		if equalFold(a, "abort") {
			c.writeError("ERR there is no shutdown in progress to abort")
			return
		}
	}
	c.s.log.WithField("client", c.addr).Info("SHUTDOWN requested by a client")
	c.quit = true
	c.s.beginShutdown()
}

func cmdCompact(c *conn, _ [][]byte) {
	if err := c.s.b.Compact(); err != nil {
		c.backendError(err)
		return
	}
	c.writeOK()
}

func cmdStats(c *conn, _ [][]byte) {
	c.writeBulkString(formatStats(c.s.b.Stats()))
}

func cmdCommand(c *conn, args [][]byte) {
	if len(args) == 1 {
		c.writeArray(len(commands))
		for _, cmd := range commands {
			c.writeCommandInfo(cmd)
		}
		return
	}
	sub := args[1]
	switch {
	case equalFold(sub, "count"):
		c.writeInt(int64(len(commands)))
	case equalFold(sub, "docs"):
		c.writeArray(0)
	case equalFold(sub, "info"):
		c.writeArray(len(args) - 2)
		for _, name := range args[2:] {
			if cmd := c.lookup(name); cmd != nil {
				c.writeCommandInfo(cmd)
			} else {
				c.writeNull()
			}
		}
	default:
		c.writeError("ERR unknown subcommand '" + string(truncate(sub, 128)) + "'. Try COMMAND HELP.")
	}
}

// writeCommandInfo writes Redis's 6-field command reply: name, arity,
// flags, first key, last key, key step.
func (c *conn) writeCommandInfo(cmd *command) {
	c.writeArray(6)
	c.writeBulkString(cmd.name)
	c.writeInt(int64(cmd.arity))
	var flags []string
	switch {
	case cmd.flags&flagWrite != 0:
		flags = append(flags, "write")
	case cmd.flags&flagReadonly != 0:
		flags = append(flags, "readonly")
	}
	if cmd.flags&flagAdmin != 0 {
		flags = append(flags, "admin")
	}
	if cmd.flags&flagNoAuth != 0 {
		flags = append(flags, "no_auth")
	}
	c.writeArray(len(flags))
	for _, f := range flags {
		c.writeString(f)
	}
	first, last, step := int64(0), int64(0), int64(0)
	if cmd.flags&(flagWrite|flagReadonly) != 0 && cmd.name != "scan" && cmd.name != "dbsize" {
		first, last, step = 1, 1, 1
		switch cmd.name {
		case "del", "exists", "mget":
			last = -1
		case "mset":
			last, step = -1, 2
		}
	}
	c.writeInt(first)
	c.writeInt(last)
	c.writeInt(step)
}

func cmdClient(c *conn, args [][]byte) {
	sub := args[1]
	switch {
	case equalFold(sub, "id") && len(args) == 2:
		c.writeInt(c.id)
	case equalFold(sub, "getname") && len(args) == 2:
		if n := c.name.Load(); n != nil && *n != "" {
			c.writeBulkString(*n)
		} else {
			c.writeNull()
		}
	case equalFold(sub, "setname") && len(args) == 3:
		for _, ch := range args[2] {
			if ch <= ' ' || ch > '~' {
				c.writeError("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
		}
		n := string(args[2])
		c.name.Store(&n)
		c.writeOK()
	case equalFold(sub, "list") && len(args) == 2:
		c.writeBulkString(c.s.clientList())
	case equalFold(sub, "setinfo") && len(args) == 4:
		// go-redis and redis-cli announce their library; kvs notes nothing.
		c.writeOK()
	case equalFold(sub, "id"), equalFold(sub, "getname"), equalFold(sub, "setname"), equalFold(sub, "list"), equalFold(sub, "setinfo"):
		c.writeError("ERR wrong number of arguments for 'client|" + strings.ToLower(string(sub)) + "' command")
	default:
		c.writeError("ERR unknown subcommand '" + string(truncate(sub, 128)) + "'. Try CLIENT HELP.")
	}
}

// clientList formats CLIENT LIST: one line per connection, by id.
func (s *Server) clientList() string {
	s.mu.Lock()
	cs := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		cs = append(cs, c)
	}
	s.mu.Unlock()
	slices.SortFunc(cs, func(a, b *conn) int { return cmp.Compare(a.id, b.id) })
	var b strings.Builder
	now := time.Now()
	for _, c := range cs {
		name := ""
		if n := c.name.Load(); n != nil {
			name = *n
		}
		last := "NULL"
		if id := c.lastCmd.Load(); id > 0 {
			last = commands[id-1].name
		}
		fmt.Fprintf(&b, "id=%d addr=%s laddr=%s name=%s age=%d db=0 cmd=%s\n",
			c.id, c.addr, c.nc.LocalAddr(), name, int64(now.Sub(c.created).Seconds()), last)
	}
	return b.String()
}
