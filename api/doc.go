// Package api holds runbox's wire types: the JSON shapes that the command line, the
// server and clients exchange. It has no behaviour and imports nothing of runbox.
package api
