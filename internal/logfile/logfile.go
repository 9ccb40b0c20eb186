package logfile

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"
)

// FlushInterval bounds how long a record may wait in the Writer's buffer
// before it is written to the file.
const FlushInterval = 100 * time.Millisecond

// bufferSize is the capacity of a Writer's buffer: large enough that writing
// it costs far less than the system call that carries it, small enough to
// lose little if the process is killed.
const bufferSize = 64 << 10

// noSizeLimitMB is the lumberjack MaxSize that stands for "no limit"; its 0
// means 100 MB. Size rotation is done here, where the limit is exact bytes.
const noSizeLimitMB = math.MaxInt32

var (
	// ErrInvalidOptions wraps every error that [Open] returns for bad
	// [Options].
	ErrInvalidOptions = errors.New("logfile: invalid options")
	// ErrClosed is returned by calls on a closed [Writer].
	ErrClosed = errors.New("logfile: writer closed")
)

// Options configures a [Writer]. Only Path is required; the zero value of
// every other field turns its feature off or picks the default.
type Options struct {
	// Path is the active log file. Backups are created beside it (see the
	// package doc for their names).
	Path string
	// MaxSize is the size in bytes past which the file is rotated before a
	// write; 0 means no size rotation. A record is never split, so a file
	// holding a single record longer than MaxSize exceeds it.
	MaxSize int64
	// MaxBackups is the number of rotated files kept; 0 keeps all.
	MaxBackups int
	// MaxAge removes rotated files older than this; 0 keeps them. It is
	// rounded up to whole days (see the package doc).
	MaxAge time.Duration
	// Compress gzips rotated files.
	Compress bool
	// Daily rotates the file before the first write of each calendar day in
	// Location, as told by Now.
	Daily bool
	// Now is the clock of the daily rotation and of records written with a
	// zero time; nil means [time.Now].
	Now func() time.Time
	// Location places the day boundary; nil means [time.Local].
	Location *time.Location
}

func (o *Options) validate() error {
	switch {
	case o.Path == "":
		return fmt.Errorf("%w: Path is empty", ErrInvalidOptions)
	case o.MaxSize < 0:
		return fmt.Errorf("%w: MaxSize is negative (%d)", ErrInvalidOptions, o.MaxSize)
	case o.MaxBackups < 0:
		return fmt.Errorf("%w: MaxBackups is negative (%d)", ErrInvalidOptions, o.MaxBackups)
	case o.MaxAge < 0:
		return fmt.Errorf("%w: MaxAge is negative (%v)", ErrInvalidOptions, o.MaxAge)
	}
	return nil
}

// maxAgeDays converts MaxAge to lumberjack's whole days, rounding up.
func maxAgeDays(d time.Duration) int {
	const day = 24 * time.Hour
	if d <= 0 {
		return 0
	}
	days := (d + day - 1) / day
	if days > math.MaxInt32 {
		return math.MaxInt32
	}
	return int(days)
}

// date is a calendar day in Options.Location.
type date struct {
	year  int
	month time.Month
	day   int
}

// Writer appends timestamped records to a log file and rotates it. It is safe
// for concurrent use; each record reaches the file in one piece. Records are
// buffered: see the package doc for when they reach the file. Create one with
// [Open]; the zero value is not usable.
type Writer struct {
	now func() time.Time
	loc *time.Location
	o   Options
	lj  *lumberjack.Logger

	mu     sync.Mutex
	closed bool
	buf    []byte // whole records not yet handed to lj
	// size is the length of the active file, buf included.
	size  int64
	stamp stamper
	// day is the calendar day of the active file's period; a time in
	// [dayStart, dayEnd) certainly falls on it.
	day              date
	dayStart, dayEnd time.Time
	// lastRotation is the wall-clock millisecond after the last rotation.
	lastRotation time.Time
	timer        *time.Timer // flushes buf FlushInterval after it stops being empty
	timerArmed   bool
	// err is the failure of a timed flush, for the next call to return.
	err error
}

var _ io.WriteCloser = (*Writer)(nil)

// Open opens o.Path for appending, creating it (mode 0600) and its missing
// parent directories (0755) if needed. An existing Path must be a regular
// file. With o.Daily, the current period is the day of the file's
// modification time if it has content, so that a file last written yesterday
// is rotated at the first write today.
func Open(o Options) (*Writer, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	w := &Writer{o: o, now: o.Now, loc: o.Location}
	if w.now == nil {
		w.now = time.Now
	}
	if w.loc == nil {
		w.loc = time.Local
	}
	// Open the file here rather than leave it to lumberjack: its errors keep
	// their os.PathError, and lumberjack would rename anything at Path that
	// it cannot append to, a directory or /dev/null included.
	if err := os.MkdirAll(filepath.Dir(o.Path), 0o755); err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	f, err := os.OpenFile(o.Path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	fi, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("logfile: %s is not a regular file (%v)", o.Path, fi.Mode().Type())
	}
	w.size = fi.Size()
	if w.size > 0 {
		w.setPeriodLocked(fi.ModTime())
	} else {
		w.setPeriodLocked(w.now())
	}
	w.lj = &lumberjack.Logger{
		Filename:   o.Path,
		MaxSize:    noSizeLimitMB,
		MaxBackups: o.MaxBackups,
		MaxAge:     maxAgeDays(o.MaxAge),
		Compress:   o.Compress,
	}
	// An empty write makes lumberjack open the file now and apply the
	// retention rules to backups left by earlier runs.
	if _, err := w.lj.Write(nil); err != nil {
		return nil, fmt.Errorf("logfile: %w", err)
	}
	w.buf = make([]byte, 0, bufferSize)
	return w, nil
}

// Line writes the record "<t> <stream> | <text>\n" (see the package doc for
// the format and escapes). A zero t means Now at the moment of writing, which
// keeps records in order and inside their day's file however many goroutines
// write. stream is a label such as "stdout"; it should contain no space or
// "|", for readers split a record at the first " | ".
// An error says that rotating or writing the file failed, for this record or
// for earlier buffered ones (a timed flush reports through the next call), and
// that records may be lost: this one if it came from a rotation or from a
// full buffer that could not be written.
func (w *Writer) Line(t time.Time, stream, text string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	var now time.Time
	switch {
	case t.IsZero():
		now = w.now()
		t = now
	case w.o.Daily && !t.Before(w.dayStart):
		// A record stamped in (or after) the current period decides the rotation by its
		// own time: no clock read per line. An older one (a line read before midnight,
		// written after) asks the clock, so a period never rotates backwards.
		now = t
	case w.o.Daily:
		now = w.now()
	}
	prefix, ms := w.stamp.stamp(t)
	sc, tc := countEscapes(stream), countEscapes(text)
	n := recordLen(len(prefix), stream, sc, text, tc)
	err := w.reserveLocked(now, n)
	if err == nil {
		w.buf = appendRecord(w.buf, prefix, ms, stream, sc, text, tc)
		err = w.wroteLocked(n)
	}
	return w.reportLocked(err)
}

// Write appends p as it is, for callers that format records themselves. It
// is subject to the same rotation as [Writer.Line] and is never split across
// files, so p should hold whole lines.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, ErrClosed
	}
	var now time.Time
	if w.o.Daily {
		now = w.now()
	}
	if err := w.reserveLocked(now, len(p)); err != nil {
		return 0, w.reportLocked(err)
	}
	if len(p) > cap(w.buf) {
		// reserveLocked emptied buf: p goes straight to the file.
		n, err := w.lj.Write(p)
		w.size += int64(n)
		if err != nil {
			err = fmt.Errorf("logfile: %w", err)
		}
		return n, w.reportLocked(err)
	}
	w.buf = append(w.buf, p...)
	return len(p), w.reportLocked(w.wroteLocked(len(p)))
}

// Flush writes buffered records to the file. It does not sync the file to
// stable storage.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	return w.reportLocked(w.flushLocked())
}

// Rotate flushes the buffer, moves the active file aside as a backup and
// starts a new one, whatever its size or day. Lumberjack then removes and
// compresses backups as configured, in the background.
func (w *Writer) Rotate() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	err := w.rotateLocked()
	if err == nil {
		w.setPeriodLocked(w.now())
	}
	return w.reportLocked(err)
}

// Close flushes the buffer and closes the file. Calls after the first return
// nil; other methods then return [ErrClosed].
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.timer != nil {
		w.timer.Stop()
	}
	errs := []error{w.err, w.flushLocked()}
	w.err = nil
	if err := w.lj.Close(); err != nil {
		errs = append(errs, fmt.Errorf("logfile: %w", err))
	}
	return errors.Join(errs...)
}

// reportLocked returns err, or else the pending error of a timed flush; the
// pending error is cleared either way, a newer failure standing for it.
func (w *Writer) reportLocked(err error) error {
	if err == nil {
		err = w.err
	}
	w.err = nil
	return err
}

// reserveLocked makes room for a write of n bytes: it rotates the file if
// the day (as of now, which is unused unless Daily) has changed or the write
// would take the file past MaxSize, and flushes buf if n bytes do not fit.
func (w *Writer) reserveLocked(now time.Time, n int) error {
	if w.o.Daily && (now.Before(w.dayStart) || !now.Before(w.dayEnd)) {
		y, m, d := now.In(w.loc).Date()
		if (date{y, m, d}) != w.day && w.size > 0 {
			// A day with nothing written leaves no empty backup.
			if err := w.rotateLocked(); err != nil {
				return err
			}
		}
		w.setPeriodLocked(now)
	}
	if w.o.MaxSize > 0 && w.size > 0 && w.size+int64(n) > w.o.MaxSize {
		if err := w.rotateLocked(); err != nil {
			return err
		}
	}
	if len(w.buf)+n > cap(w.buf) {
		return w.flushLocked()
	}
	return nil
}

// wroteLocked accounts for n bytes just appended to buf.
func (w *Writer) wroteLocked(n int) error {
	w.size += int64(n)
	var err error
	if len(w.buf) >= bufferSize {
		err = w.flushLocked()
	}
	w.armLocked()
	return err
}

// armLocked makes sure a timed flush is due if buf holds anything.
func (w *Writer) armLocked() {
	if len(w.buf) == 0 || w.timerArmed {
		return
	}
	w.timerArmed = true
	if w.timer == nil {
		w.timer = time.AfterFunc(FlushInterval, w.timedFlush)
	} else {
		w.timer.Reset(FlushInterval)
	}
}

func (w *Writer) timedFlush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.timerArmed = false
	if w.closed {
		return
	}
	if err := w.flushLocked(); err != nil {
		if w.err == nil {
			w.err = err
		}
		w.armLocked() // try again
	}
}

// flushLocked hands buf to lumberjack. On failure the unwritten bytes stay
// buffered for the next attempt.
func (w *Writer) flushLocked() error {
	if len(w.buf) == 0 {
		return nil
	}
	n, err := w.lj.Write(w.buf)
	if err != nil {
		w.buf = w.buf[:copy(w.buf, w.buf[n:])]
		return fmt.Errorf("logfile: %w", err)
	}
	if cap(w.buf) > bufferSize {
		// A record longer than the buffer grew it; don't keep that.
		w.buf = make([]byte, 0, bufferSize)
	} else {
		w.buf = w.buf[:0]
	}
	return nil
}

// rotateLocked flushes buf and has lumberjack rotate. The caller sets the new
// period.
func (w *Writer) rotateLocked() error {
	if err := w.flushLocked(); err != nil {
		return err
	}
	// Lumberjack names a backup after the wall-clock millisecond of the
	// rename, and renaming onto an existing backup replaces it: a second
	// rotation within the same millisecond would silently delete the first
	// backup. A wait longer than a millisecond means the clock was set back.
	if d := time.Until(w.lastRotation.Add(time.Millisecond)); d > 0 && d <= time.Millisecond {
		time.Sleep(d)
	}
	err := w.lj.Rotate()
	w.lastRotation = time.Now().Truncate(time.Millisecond)
	if err != nil {
		return fmt.Errorf("logfile: rotate: %w", err)
	}
	w.size = 0
	return nil
}

// setPeriodLocked makes t's day in w.loc the active file's period.
func (w *Writer) setPeriodLocked(t time.Time) {
	y, m, d := t.In(w.loc).Date()
	w.day = date{y, m, d}
	w.dayStart = time.Date(y, m, d, 0, 0, 0, 0, w.loc)
	w.dayEnd = time.Date(y, m, d+1, 0, 0, 0, 0, w.loc)
}
