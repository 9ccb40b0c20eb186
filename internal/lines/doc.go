// Package lines splits a child process's output stream into lines as it arrives.
//
// A [Splitter] is an [io.Writer] that a pipe reader copies into; it calls a
// callback once per line with a [Line] whose [Kind] says how the line ended:
//
//   - [Full]: by "\n" or "\r\n". "\r\n" counts as one terminator even when a
//     Write boundary falls between the two bytes.
//   - [Update]: by a lone "\r", the way curl, rsync or pg_basebackup redraw a
//     progress line. An empty Update ("\r\r", or a "\r" at the start of a line)
//     is delivered like an empty Full line, so no byte of the stream is lost;
//     a renderer that redraws can skip it.
//   - [Partial]: a piece of a line longer than the splitter's maximum length;
//     more of the same line follows.
//   - [Unterminated]: the bytes after the last terminator, delivered by
//     [Splitter.Flush] at the end of the stream.
//
// Text never contains "\r" or "\n", so the stream can be rebuilt exactly from
// the lines and the terminators their kinds imply (for Full, "\n" or "\r\n").
//
// # Bounded memory
//
// A child can write a gigabyte without a newline. The splitter therefore never
// holds more than its maximum line length ([DefaultMaxLen] unless given) plus
// one pending "\r": a longer line arrives as Partial pieces of exactly the
// maximum length followed by the remainder with its real Kind. Nothing is
// dropped and Write never fails: a consumer that keeps only part of the
// output applies its own cap, and Partial tells it which lines were cut.
//
// Complete lines inside one Write are passed to the callback as sub-slices of
// the written buffer; only the tail of a line still open at the end of a Write
// is copied. Hence [Line.Text] is valid only during the callback.
//
// # Concurrency and reuse
//
// A Splitter is not safe for concurrent use; give each output stream its own.
// The callback runs synchronously inside Write and Flush and must not call
// back into the same Splitter. After Flush the Splitter is empty and may carry
// on with a new stream.
//
// Splitter deliberately does not implement [io.ReaderFrom], so [io.Copy]
// feeds it through Write in bounded chunks: the one path whose memory the
// rules above bound.
package lines
