// Package logfile writes the log file of `runbox exec --log FILE`: every
// output line of the monitored command, timestamped and labelled with its
// stream, in a file rotated daily and optionally by size, with retention.
//
// Rotation, backups, retention and compression are those of
// gopkg.in/natefinch/lumberjack.v2; this package adds the record format, the
// daily trigger (lumberjack has none), exact byte sizes and a write buffer.
//
// # Records
//
// [Writer.Line] writes one record per line:
//
//	2026-11-22T04:31:54.123Z stderr | text
//
// The timestamp is RFC 3339 in UTC with exactly three fractional digits, so
// records sort as text and have a fixed-width prefix (24 bytes for years
// 0000-9999). Then a space, the stream label, " | ", the text and "\n". A
// reader splits a record at the first " | ", so the label (which runbox
// chooses: "stdout", "stderr") must contain no space or "|".
//
// A record is always one line: in the stream and the text, "\n" is written
// as the two bytes `\n`, "\r" as `\r` and "\" as `\\`, so the original bytes
// can be recovered exactly. Every other byte is written as it is, including
// tabs, terminal escape sequences and invalid UTF-8: the file holds what the
// command wrote, not a sanitised copy. Bounding the line length is the
// caller's job (runbox splits output with package lines, which does).
//
// # Rotation
//
// Before each write, the active file is rotated
//   - with [Options.Daily], if the calendar day of [Options.Now] in
//     [Options.Location] differs from the day of the file's period. A period
//     starts at the previous rotation, or at [Open]: from the file's
//     modification time if it is not empty, so that a file last written
//     yesterday is rotated at the first write today. A day with nothing
//     written produces no backup. The check is made at writes only: a quiet
//     file is rotated at its next write, not at midnight. A record keeps the
//     time given to Line, so a line read just before midnight but written
//     just after is in the new day's file with the old day's time; a zero
//     time, taken from Now when the record is written, avoids that;
//   - with [Options.MaxSize], if the write would take the file past that many
//     bytes. Rotations happen between records, never inside one, so a file
//     holding one record longer than MaxSize exceeds it.
//
// [Writer.Rotate] rotates whenever asked, for example on SIGHUP.
//
// A rotation renames the active file to a backup named after the rotation's
// wall-clock time in UTC, in lumberjack's form: run.log becomes
// run-2026-11-22T04-31-54.123.log (with ".gz" appended once compressed), and
// a new run.log is created with the old one's mode. Lumberjack then, in a
// goroutine of its own, removes backups beyond [Options.MaxBackups] (newest
// kept) or older than [Options.MaxAge], and compresses the rest if
// [Options.Compress].
//
// # Buffering and durability
//
// Records go to a 64 KiB buffer that is written to the file (one write
// system call per buffer) when it fills, [FlushInterval] after it stops being
// empty, before each rotation, and by [Writer.Flush] and [Writer.Close].
// A system call per 100-byte line would cap the throughput well below what a
// chatty command produces. The price: if the process dies without Close
// (SIGKILL, a crash), up to FlushInterval of output, at most 64 KiB, is lost.
// Nothing is synced to stable storage (lumberjack keeps its *os.File to
// itself); after Close, the records survive a crash of the process but not
// of the machine.
//
// # Concurrency and reuse
//
// A [Writer] is safe for concurrent use. One mutex orders all writes, each
// record is appended whole to the buffer, and the buffer is written out only
// at record boundaries, so records never interleave or tear, within a file or
// across a rotation. A Writer writes one file for its lifetime; after Close
// every method but Close returns [ErrClosed]. As with lumberjack, only one
// Writer, in one process, may write a given Path at a time.
//
// # What lumberjack imposes
//
//   - Its MaxSize is in whole megabytes and its 0 means 100 MB. This package
//     gives lumberjack an unreachable MaxSize and rotates by size itself,
//     through lumberjack's Rotate, so [Options.MaxSize] is exact in bytes.
//   - Its MaxAge is in whole days of 24 hours. [Options.MaxAge] is rounded up
//     to whole days: 1h keeps backups for 24h, 36h for 48h. Age is measured
//     from the rotation time in a backup's name, not from its last write.
//   - Backup names and MaxAge use the real clock, never [Options.Now].
//   - Backup names have millisecond resolution and a new backup replaces an
//     existing one of the same name, so two rotations in one millisecond
//     would delete the first backup. The Writer spaces its rotations at
//     least a millisecond apart.
//   - Removal and compression run in a background goroutine after each
//     rotation and at Open. Close does not wait for them, and the goroutine
//     outlives the Writer (lumberjack never stops it). A backup left
//     uncompressed by a process that exited is compressed at the next Open.
//   - Errors from a rotation are plain text: they do not wrap the underlying
//     [os.PathError]. Errors from Open do.
//
// # Files and modes
//
// [Open] creates missing parent directories (0755 before the umask) and the
// file itself (0600: command output may hold secrets). It refuses a Path that
// exists but is not a regular file, which lumberjack would otherwise rename.
package logfile
