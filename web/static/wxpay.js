// JSAPI payment inside WeChat's browser. The order page carries the signed parameters
// in #wxpay[data-wxpay] (JSON: appId, timeStamp, nonceStr, package, signType, paySign);
// this hands them to WeixinJSBridge, which WeChat's browser itself provides (nothing is
// loaded from elsewhere). What WeChat answers here is only the payer's side: the page
// follows the order's status (console.js data-poll) until the notification credits it.
(function () {
  "use strict";
  function start(box) {
    var params = JSON.parse(box.getAttribute("data-wxpay"));
    var button = box.querySelector("#wxpay-button");
    var result = box.querySelector("#wxpay-result");
    function answered(res) {
      var message = (res && res.err_msg) || "";
      box.setAttribute("data-result", message);
      if (message === "get_brand_wcpay_request:ok") {
        result.textContent = box.getAttribute("data-paid-text");
        button.hidden = true;
        return;
      }
      result.textContent = box.getAttribute(
        message.indexOf("cancel") >= 0 ? "data-cancel-text" : "data-fail-text");
      button.disabled = false;
    }
    function pay() {
      if (typeof window.WeixinJSBridge === "undefined" ||
          typeof window.WeixinJSBridge.invoke !== "function") {
        document.addEventListener("WeixinJSBridgeReady", pay, {once: true});
        return;
      }
      button.disabled = true;
      window.WeixinJSBridge.invoke("getBrandWCPayRequest", params, answered);
    }
    button.addEventListener("click", pay);
    pay();
  }
  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("wxpay");
    if (box) { start(box); }
  });
})();
