console.log('weft');
