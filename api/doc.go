// Package api holds runbox's wire types: the JSON shapes that the command line, the
// server and clients exchange. Its only behaviour is their JSON encoding; it imports
// nothing of runbox.
package api
