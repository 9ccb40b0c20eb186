const words = ['sandbox', 'runs', 'untrusted', 'code'];
console.log(words.map((w) => w.toUpperCase()).join(' '));
