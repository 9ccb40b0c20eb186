const config = JSON.parse('{"retries": 3}');
console.log('retries', config.retries);
console.log(config.server.host);
