// tiny
console.log(1);
