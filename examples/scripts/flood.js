for (;;) console.log('spam '.repeat(20));
