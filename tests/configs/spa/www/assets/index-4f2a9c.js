import{createApp as a}from"./vendor.js";a({}).mount("#app");
